"""POST /classify: vLLM's classification API at the root (where vLLM serves it), in vLLM's request and error shapes.

verl's discriminative reward-model path posts here; the aggregate reward is the last entry of ``probs``.
Authentication as for ``/get_reward``: a bearer key, or ``?api_key=`` for clients that send no header.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError

from api.responses import FastJSONResponse
from api.routes.openrlhf import _authorised
from api.schemas import VLLM_ERROR_RESPONSES
from judge.classify import ClassifyRequest, classify, error_body
from judge.runtime import Runtime
from rubrics.errors import RubricJudgeError

router = APIRouter(tags=["vllm"])


@router.post(
    "/classify",
    responses=VLLM_ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ClassifyRequest.model_json_schema()}},
        }
    },
)
async def vllm_classify(request: Request) -> FastJSONResponse:
    """Per input: the reward model's axis scores (or pass probabilities with activation), then the reward."""
    runtime: Runtime = request.app.state.runtime
    if not _authorised(request, runtime.settings.api_key_set()):
        return FastJSONResponse(error_body("missing or invalid API key", 401), status_code=401)
    try:
        body = ClassifyRequest.model_validate_json(await request.body())
        payload = await classify(runtime, body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        return FastJSONResponse(error_body(f"{param or 'body'}: {first['msg']}", 400, param), status_code=400)
    except RubricJudgeError as exc:
        # vLLM answers 400 for what a client got wrong; 404/409/5xx keep their codes.
        status = 400 if exc.status_code == 422 else exc.status_code
        return FastJSONResponse(error_body(exc.message, status, exc.field), status_code=status)
    return FastJSONResponse(payload)
