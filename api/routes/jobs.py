"""Bulk jobs: create (streamed JSONL upload, or a server-side path), status, list, results, cancel."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import StreamingResponse

from api.auth import check_admin
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from judge.jobs.errors import InvalidJob, UnsupportedMediaType
from judge.jobs.schemas import JobSpec
from judge.jobs.service import JobsService, result_states
from rubrics.storable import check_storable

router = APIRouter(tags=["jobs"])

JSONL_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonl"})


async def get_jobs(request: Request) -> JobsService:
    jobs: JobsService = request.app.state.jobs
    return jobs


JobsDep = Annotated[JobsService, Depends(get_jobs)]


class JobSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Relative to RJ_JOBS_INPUT_DIR, or absolute inside it.
    path: Annotated[str, Field(min_length=1, max_length=4096)]

    @field_validator("path")
    @classmethod
    def _storable(cls, value: str) -> str:
        return str(check_storable(value))


class JobCreate(JobSpec):
    """``POST /v1/jobs`` with a JSON body: the job and a file the server reads."""

    source: JobSource


def _spec_from_query(request: Request) -> JobSpec:
    """For a JSONL body the job is described by query parameters; ``options`` is a JSON object."""
    query = request.query_params
    unknown = sorted(set(query) - {"kind", "rubric", "judge", "generator", "options"})
    if unknown:
        raise InvalidJob(f"unknown query parameter {unknown[0]!r}", field=unknown[0])
    raw: dict[str, Any] = {k: query[k] for k in ("kind", "rubric", "judge", "generator") if k in query}
    if "options" in query:
        try:
            raw["options"] = orjson.loads(query["options"])
        except orjson.JSONDecodeError as exc:
            raise InvalidJob(f"options is not JSON: {exc}", field="options") from exc
    return JobSpec.model_validate(raw)


@router.post(
    "/jobs",
    status_code=202,
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string", "description": "one item a line"}},
                "application/json": {"schema": JobCreate.model_json_schema()},
            },
        }
    },
)
async def create_job(request: Request, jobs: JobsDep) -> FastJSONResponse:
    """Create a job. JSONL body (query: kind, rubric, judge, generator, options): streamed in, answered once
    stored and queued. JSON body with ``source.path``: the server reads the file in the background."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        # The server reads a file of its own disk: an admin's call, not a plain key's.
        check_admin(request, request.app.state.runtime.settings)
        body = JobCreate.model_validate_json(await request.body())
        spec = JobSpec.model_validate(body.model_dump(exclude={"source"}))
        view = await jobs.create_from_path(spec, body.source.path)
    elif media in JSONL_TYPES:
        view = await jobs.create_from_stream(_spec_from_query(request), request.stream())
    else:
        raise UnsupportedMediaType(
            f"send the samples as application/x-ndjson, or a JSON job with source.path; got {media or 'none'}",
            field="content-type",
        )
    return FastJSONResponse(view, status_code=202)


@router.get("/jobs", responses=ERROR_RESPONSES)
async def list_jobs(
    jobs: JobsDep,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> FastJSONResponse:
    """Jobs, newest first."""
    return FastJSONResponse({"jobs": await jobs.list(state=state, limit=limit, offset=offset)})


@router.get("/jobs/{job_id}", responses=ERROR_RESPONSES)
async def get_job(job_id: str, jobs: JobsDep) -> FastJSONResponse:
    """State; counts (total, done, kept, dropped, failed, invalid); rate; ETA; the summary so far."""
    return FastJSONResponse(await jobs.get(job_id))


@router.get("/jobs/{job_id}/results", responses=ERROR_RESPONSES)
async def job_results(
    job_id: str,
    jobs: JobsDep,
    kept: bool | None = None,
    outcome: Annotated[list[str] | None, Query()] = None,
) -> StreamingResponse:
    """Finished items' records as JSONL, in line order: ``kept=true`` the kept ones, ``kept=false`` the others."""
    stream = await jobs.results(job_id, result_states(kept, outcome))
    return StreamingResponse(stream, media_type="application/x-ndjson")


@router.post("/jobs/{job_id}/cancel", responses=ERROR_RESPONSES)
async def cancel_job(job_id: str, jobs: JobsDep) -> FastJSONResponse:
    """Stop a job: chunks in progress finish, the rest stay pending (their items appear in no output)."""
    return FastJSONResponse(await jobs.cancel(job_id))
