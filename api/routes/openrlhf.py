"""POST /get_reward: OpenRLHF's remote reward protocol, at the root and in its own shapes.

Answers ``{"rewards", "scores", "extra_logs"}``; errors are FastAPI's ``{"detail": ...}``, which is what an
OpenRLHF reward server answers with. ``?rubric=`` and ``?judge=`` override the server's RJ_REWARD_* settings.
OpenRLHF sends no Authorization header, so when API keys are set the key may also come as ``?api_key=``.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from pydantic import ValidationError

from api.responses import FastJSONResponse
from api.schemas import DETAIL_RESPONSES
from judge.rewards.openrlhf import OpenRLHFRequest, get_reward
from judge.runtime import Runtime
from rubrics.errors import RubricJudgeError

router = APIRouter(tags=["openrlhf"])


def _authorised(request: Request, keys: frozenset[str]) -> bool:
    if not keys:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        token = request.query_params.get("api_key", "")
    # Constant-time comparison against each key, as for /v1.
    return bool(token) and any(hmac.compare_digest(token.encode(), key.encode()) for key in keys)


@router.post(
    "/get_reward",
    responses=DETAIL_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": OpenRLHFRequest.model_json_schema()}},
        }
    },
)
async def openrlhf_get_reward(
    request: Request, rubric: str | None = None, judge: str | None = None
) -> FastJSONResponse:
    """Rewards for OpenRLHF queries (prompt + response, chat-templated), in input order."""
    # Read here rather than through the (synchronous) runtime dependency, which FastAPI would run in its thread
    # pool: a thread hop per request is a measurable share of CPU at one rollout per POST.
    runtime: Runtime = request.app.state.runtime
    if not _authorised(request, runtime.settings.api_key_set()):
        return FastJSONResponse({"detail": "missing or invalid API key"}, status_code=401)
    try:
        body = OpenRLHFRequest.model_validate_json(await request.body())
        payload = await get_reward(runtime, body, rubric=rubric, judge=judge)
    except ValidationError as exc:
        detail = [
            {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False)
        ]
        return FastJSONResponse({"detail": detail}, status_code=422)
    except RubricJudgeError as exc:
        return FastJSONResponse({"detail": exc.message}, status_code=exc.status_code)
    return FastJSONResponse(payload)
