"""POST /v1/score: score samples under a rubric with a judge profile."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import RuntimeDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES, ScoreRequest, ScoreResponse
from judge.service import check_limits, normalise_all, resolve, score_samples

router = APIRouter(tags=["scoring"])


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": ScoreRequest.model_json_schema()}}}
    },
)
async def score(request: Request, runtime: RuntimeDep) -> FastJSONResponse:
    """Results in input order: per-axis scores and statuses, layers, reward, pass/fail, cache flag."""
    # Parsed here rather than by FastAPI: pydantic-core validates the raw bytes directly (the hot
    # path of cached RL batches) and errors keep our one shape.
    body = ScoreRequest.model_validate_json(await request.body())
    check_limits(runtime.settings, body.samples)
    rubric, profile = resolve(runtime, body.rubric, body.judge)
    payload = await score_samples(runtime, rubric, profile, normalise_all(body.samples), body.options)
    return FastJSONResponse(payload)
