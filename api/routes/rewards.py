"""POST /v1/rewards: rewards for a batch of rollouts (GRPO groups), with per-group statistics."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import RuntimeDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from judge.rewards.schemas import RewardsRequest, RewardsRequestSchema
from judge.rewards.service import reward_request

router = APIRouter(tags=["rewards"])


@router.post(
    "/rewards",
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RewardsRequestSchema.model_json_schema()}},
        }
    },
)
async def rewards(request: Request, runtime: RuntimeDep) -> FastJSONResponse:
    """Per item (input order): reward, pass, per-axis scores, layers, status, cache hit; per group: statistics."""
    # Validated from the raw bytes (as /v1/score); items one by one, so one malformed item is not a 422.
    body = RewardsRequest.model_validate_json(await request.body())
    return FastJSONResponse(await reward_request(runtime, body))
