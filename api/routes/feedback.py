"""POST /v1/feedback: a verdict (by id, or given) becomes refinement instructions in the rubric's language."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import RuntimeDep, SessionDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from judge.errors import InvalidSample, RubricNotFound, VerdictNotFound
from judge.feedback import AxisScore, axis_scores, build_feedback
from judge.store.rubrics_repository import RubricRepository
from judge.store.verdicts_repository import VerdictRepository

router = APIRouter(tags=["feedback"])


class VerdictBody(BaseModel):
    """A verdict as /v1/score returns it, or as stored: only the axes' scores, statuses and rationales are read."""

    model_config = ConfigDict(extra="ignore")

    axes: dict[str, AxisScore]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Looked up in the store, which cannot take NUL in a query: refused here (422 naming the field).
    verdict_id: Annotated[str | None, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")] = None
    verdict: VerdictBody | None = None
    # With ``verdict``: the rubric it was scored under (default prmed). With ``verdict_id``: the verdict's own.
    rubric: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    language: Literal["zh", "en"] | None = None


@router.post(
    "/feedback",
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": FeedbackRequest.model_json_schema()}},
        }
    },
)
async def feedback(request: Request, runtime: RuntimeDep, session: SessionDep) -> FastJSONResponse:
    """Failing axes with the judge's rationales and the anchors of the next level up, as instructions."""
    body = FeedbackRequest.model_validate_json(await request.body())
    if (body.verdict_id is None) == (body.verdict is None):
        raise InvalidSample("give either verdict_id or verdict", field="verdict_id")
    if body.verdict_id is not None:
        verdict = await VerdictRepository(session).get(body.verdict_id)
        if verdict is None:
            raise VerdictNotFound(f"no verdict {body.verdict_id!r}", field="verdict_id")
        rubric = runtime.rubrics.get_by_hash(verdict.rubric_hash) or await RubricRepository(session).get_by_hash(
            verdict.rubric_hash
        )
        if rubric is None:
            raise RubricNotFound(f"the verdict's rubric {verdict.rubric_ref} is not registered", field="rubric")
        if body.rubric is not None and runtime.rubrics.resolve(body.rubric).content_hash != rubric.content_hash:
            raise InvalidSample(f"verdict {verdict.id} was scored under {rubric.ref}", field="rubric")
        axes = axis_scores(verdict)
    else:
        assert body.verdict is not None
        rubric = runtime.rubrics.resolve(body.rubric or "prmed")
        axes = body.verdict.axes
        unknown = [key for key in axes if key not in set(rubric.axis_keys)]
        if unknown:
            raise InvalidSample(f"{rubric.ref} has no axis {unknown[0]!r}", field=f"verdict.axes.{unknown[0]}")
    result = build_feedback(rubric, axes, language=body.language)
    return FastJSONResponse(result.model_dump(mode="json"))
