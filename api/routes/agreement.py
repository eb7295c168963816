"""Agreement studies: POST /v1/ratings (import), GET /v1/agreement (the report as JSON)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from api.deps import RuntimeDep, SessionDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from judge.agreement.errors import InvalidRatingsFile
from judge.agreement.ratings import ImportResult, RatingIssue, RatingsFormat, count_lines, parse_ratings
from judge.agreement.store import SampleIndex, store_import, validate_items
from judge.agreement.studies import agreement_from_store
from judge.errors import LimitExceeded, RubricJudgeError
from judge.samples import SampleIn, normalise
from judge.service import check_limits

router = APIRouter(tags=["agreement"])

# Upload media types and the ratings format each one carries.
UPLOAD_TYPES: dict[str, RatingsFormat] = {
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}


class UnsupportedMediaType(RubricJudgeError):
    status_code = 415


class RatingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rubric: Annotated[str, Field(min_length=1, max_length=200)] = "prmed"
    # Items are validated one by one (bad ones are reported by position, good ones kept): hence Any.
    ratings: list[Any]
    # Samples whose ``id`` the ratings may use as ``sample_id``; their content is stored with the ratings.
    samples: list[SampleIn] | None = None


class RatingIssueOut(BaseModel):
    line: int
    field: str | None
    message: str


class RatingsResponse(BaseModel):
    rubric: str
    rubric_hash: str
    accepted: int
    raters: dict[str, int]
    errors: list[RatingIssueOut]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


@router.post(
    "/ratings",
    response_model=RatingsResponse,
    responses={**ERROR_RESPONSES, 415: ERROR_RESPONSES[422]},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": RatingsRequest.model_json_schema()},
                **{media: {"schema": {"type": "string"}} for media in UPLOAD_TYPES},
            },
        }
    },
)
async def import_ratings(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    rubric: Annotated[str | None, Query(description="Rubric of an upload (a JSON body names its own).")] = None,
) -> FastJSONResponse:
    """Import ratings (JSON, or a CSV/TSV/JSONL upload): good rows are upserted, bad rows come back by line.

    A rating names its sample by ``sample_hash`` or by ``sample_id``; ids resolve against the body's
    ``samples`` (an upload can only use hashes). 422 naming the first bad field when no row is valid.
    """
    settings = runtime.settings
    media = _media_type(request)
    raw = await request.body()
    index = SampleIndex()
    result: ImportResult
    if media in UPLOAD_TYPES:
        rubric_obj = runtime.rubrics.resolve(rubric or "prmed")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidRatingsFile(f"the upload is not UTF-8 text (byte {exc.start})", field="file") from None
        # Every line ending counts (the CSV reader splits on CR alone too, and JSONL on all of splitlines'):
        # counting only LF let a CR-only file past the cap.
        if count_lines(text) > settings.max_ratings_per_request + 1:
            raise LimitExceeded(
                f"more than {settings.max_ratings_per_request} lines; the limit is "
                f"{settings.max_ratings_per_request} ratings per request",
                field="file",
            )
        result = parse_ratings(text, rubric_obj, format=UPLOAD_TYPES[media])

        def field_of(issue: RatingIssue) -> str:
            return issue.field or "file"

        empty_field = "file"
    elif media == "application/json":
        body = RatingsRequest.model_validate_json(raw)
        if len(body.ratings) > settings.max_ratings_per_request:
            raise LimitExceeded(
                f"{len(body.ratings)} ratings in one request; the limit is {settings.max_ratings_per_request}",
                field="ratings",
            )
        rubric_obj = runtime.rubrics.resolve(body.rubric)
        if body.samples:
            check_limits(settings, body.samples)
            index = SampleIndex.of(normalise(sample) for sample in body.samples)
        result = validate_items(body.ratings, rubric_obj)

        def field_of(issue: RatingIssue) -> str:
            where = f"ratings[{issue.line - 1}]"
            return f"{where}.{issue.field}" if issue.field else where

        empty_field = "ratings"
    else:
        raise UnsupportedMediaType(
            f"cannot import {media!r}: send application/json, or upload {', '.join(UPLOAD_TYPES)}",
            field="content-type",
        )
    outcome = await store_import(session, rubric_obj, result, index)
    outcome.require_some(empty_field=empty_field, field_of=field_of)
    await session.commit()
    return FastJSONResponse(
        {
            "rubric": rubric_obj.ref,
            "rubric_hash": rubric_obj.content_hash,
            "accepted": outcome.accepted,
            "raters": outcome.raters,
            "errors": [issue.model_dump() for issue in outcome.errors],
        }
    )


@router.get("/agreement", responses=ERROR_RESPONSES)
async def agreement(
    runtime: RuntimeDep,
    rubric: Annotated[str, Query(min_length=1, max_length=200)] = "prmed",
    raters: Annotated[
        str, Query(min_length=1, description="Comma-separated rater names or globs, e.g. judge:a,judge:b,human:*")
    ] = "*",
    n_boot: Annotated[
        int | None, Query(ge=0, description="Bootstrap resamples (default and maximum: settings)")
    ] = None,
    seed: Annotated[int, Query(ge=0, le=2**32 - 1)] = 0,
) -> FastJSONResponse:
    """Agreement of the selected raters per axis and overall, with bootstrap CIs (the report's JSON).

    404 naming ``raters`` when a name or pattern matches no rater; 422 when too few raters or ratings overlap.
    """
    settings = runtime.settings
    boot = settings.agreement_n_boot if n_boot is None else n_boot
    if boot > settings.agreement_max_n_boot:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "n_boot"),
                    "msg": f"at most {settings.agreement_max_n_boot} bootstrap resamples",
                    "type": "less_than_equal",
                }
            ]
        )
    rubric_obj = runtime.rubrics.resolve(rubric)
    report = await agreement_from_store(runtime.sessions, rubric_obj, raters, n_boot=boot, seed=seed)
    return FastJSONResponse(report.model_dump(mode="json"))
