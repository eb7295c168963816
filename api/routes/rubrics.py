"""Rubrics: list, show, register a new version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from api.auth import require_admin_key
from api.deps import RuntimeDep, SessionDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES, RubricSummary
from judge.errors import InvalidRubric, LimitExceeded
from judge.store.rubrics_repository import RubricRepository
from rubrics.schema import MAX_RUBRIC_BYTES, Rubric

router = APIRouter(tags=["rubrics"])


def summary(rubric: Rubric) -> dict[str, Any]:
    return {
        "ref": rubric.ref,
        "name": rubric.name,
        "version": rubric.version,
        "hash": rubric.content_hash,
        "kind": rubric.kind,
        "language": rubric.language,
        "axes": rubric.axis_keys,
        "description": rubric.description.model_dump(),
    }


@router.get("/rubrics", response_model=list[RubricSummary])
async def list_rubrics(runtime: RuntimeDep) -> FastJSONResponse:
    return FastJSONResponse([summary(r) for r in runtime.rubrics.list()])


@router.get("/rubrics/{ref}", responses=ERROR_RESPONSES)
async def show_rubric(ref: str, runtime: RuntimeDep) -> FastJSONResponse:
    """The whole rubric (``name`` for the latest version, or ``name@version``) with its content hash."""
    rubric = runtime.rubrics.resolve(ref)
    return FastJSONResponse({**rubric.model_dump(mode="json"), "ref": rubric.ref, "hash": rubric.content_hash})


@router.post(
    "/rubrics",
    status_code=201,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(require_admin_key)],
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": Rubric.model_json_schema()}}}
    },
)
async def register_rubric(request: Request, runtime: RuntimeDep, session: SessionDep) -> FastJSONResponse:
    """Register a new rubric version (admin key); a reused ``name@version`` with other content is a 409."""
    raw = await request.body()
    if len(raw) > MAX_RUBRIC_BYTES:
        raise LimitExceeded(f"the rubric has {len(raw)} bytes; the limit is {MAX_RUBRIC_BYTES}", field="body")
    try:
        rubric = Rubric.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            raise
        loc = ".".join(str(p) for p in errors[0].get("loc", ())) if errors else None
        raise InvalidRubric(f"invalid rubric: {errors[0].get('msg') if errors else exc}", field=loc) from exc
    # The store is the record: write it first, so a conflict there leaves the registry untouched.
    await RubricRepository(session).add(rubric)
    runtime.rubrics.register(rubric)
    await session.commit()
    return FastJSONResponse(summary(rubric), status_code=201)
