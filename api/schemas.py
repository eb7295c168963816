"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from judge.samples import SampleIn
from judge.service import ScoreOptions


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rubric: Annotated[str, Field(min_length=1, max_length=200)] = "prmed"
    # None: RJ_DEFAULT_JUDGE, else the only configured judge fit for the rubric's kind.
    judge: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    samples: list[SampleIn]
    options: ScoreOptions = Field(default_factory=ScoreOptions)


class AxisOut(BaseModel):
    score: int | None
    expected: float | None
    status: str
    rationale: str | None = None
    score_method: str | None = None
    mass: float | None = None
    error: str | None = None


class ResultOut(BaseModel):
    id: str | None
    sample_hash: str
    axes: dict[str, AxisOut]
    layers: dict[str, float | None]
    reward: float | None
    passed: bool | None
    failing_axes: list[str]
    missing_axes: list[str]
    gated_by: list[str]
    reason: str | None
    cached: bool
    verdict_id: str | None
    clipped: bool
    error: str | None


class CostOut(BaseModel):
    amount: float
    currency: str
    # Copies of hedged calls cancelled before their answer (one per hedge sent): their tokens are unknown.
    unpriced_calls: int


class UsageOut(BaseModel):
    samples: int
    cached: int
    judged: int
    timed_out: int
    # Answered verdicts not in the store yet (an outage): retried until stored, never dropped.
    pending_writes: int = 0
    calls: int
    prompt_tokens: int
    # Of prompt_tokens, those the judge's provider served from its prefix cache.
    cached_tokens: int = 0
    completion_tokens: int = 0
    retries: int
    # Extra calls sent by hedging (profiles with hedge_after_ms / hedge_percentile).
    hedges: int = 0
    # The calls' cost at the judge profile's `prices`; null when the profile has none.
    cost: CostOut | None = None


class ScoreResponse(BaseModel):
    rubric: str
    rubric_hash: str
    judge: str
    results: list[ResultOut]
    usage: UsageOut


class RubricSummary(BaseModel):
    ref: str
    name: str
    version: int
    hash: str
    kind: str
    language: str
    axes: list[str]
    description: dict[str, str]


class ErrorBody(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 503)
}


class VLLMErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class VLLMError(BaseModel):
    """vLLM's error shape (``/classify``)."""

    error: VLLMErrorBody


class DetailResponse(BaseModel):
    """FastAPI's ``{"detail": ...}`` shape, which OpenRLHF's reward servers answer errors with (``/get_reward``)."""

    detail: Any


VLLM_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": VLLMError} for code in (400, 401, 404, 409, 413, 422, 503)
}
DETAIL_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": DetailResponse} for code in (400, 401, 404, 409, 413, 422, 503)
}
