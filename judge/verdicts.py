"""Per-axis results and verdicts: what a judge said about one sample under one rubric."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AxisStatus(StrEnum):
    ok = "ok"
    parse_error = "parse_error"
    judge_error = "judge_error"
    timeout = "timeout"
    truncated = "truncated"


# "integer": logprobs not asked for; "logprobs": expected score from the score token's top logprobs;
# "no_logprobs": asked for, but the server returned none usable, so only the integer is known.
ScoreMethod = Literal["integer", "logprobs", "no_logprobs", "model"]


class AxisResult(BaseModel):
    """One axis. ``score`` is None unless ``status`` is ok: a score is never invented."""

    model_config = ConfigDict(extra="forbid")

    score: int | None = Field(default=None, ge=1, le=5)
    expected: float | None = Field(default=None, ge=1, le=5)
    # Probability mass the top logprobs put on the tokens "1".."5" (how much of E is covered).
    mass: float | None = Field(default=None, ge=0, le=1.0001)
    status: AxisStatus
    rationale: str | None = None
    score_method: ScoreMethod = "integer"
    error: str | None = None

    @classmethod
    def failed(cls, status: AxisStatus, error: str, rationale: str | None = None) -> AxisResult:
        return cls(status=status, error=error, rationale=rationale)


class Usage(BaseModel):
    """What judging cost. ``cached_tokens`` is the part of ``prompt_tokens`` the provider served from its prefix
    cache (billed at a fraction); ``hedges`` counts extra calls sent because an answer was slow (their tokens are
    not known: a cancelled call reports none, though a provider may bill part of it)."""

    model_config = ConfigDict(extra="forbid")

    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    hedges: int = 0

    def add(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            retries=self.retries + other.retries,
            hedges=self.hedges + other.hedges,
        )


class JudgeOutcome(BaseModel):
    """What a backend returns for one sample: every axis of the rubric, each with a status."""

    model_config = ConfigDict(extra="forbid")

    axes: dict[str, AxisResult]
    usage: Usage = Field(default_factory=Usage)
    # A sample-level error message when the whole call failed (each axis then carries a status too).
    error: str | None = None

    @property
    def complete(self) -> bool:
        return all(a.status is AxisStatus.ok for a in self.axes.values())

    @classmethod
    def all_failed(
        cls, axis_keys: list[str], status: AxisStatus, error: str, usage: Usage | None = None
    ) -> JudgeOutcome:
        return cls(
            axes={k: AxisResult.failed(status, error) for k in axis_keys},
            usage=usage or Usage(),
            error=error,
        )


class GroupPlacement(BaseModel):
    """Where a sample sat in a group-mode judge call: its scores are relative to the other candidates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Hash of the group's distinct sample hashes (its composition); part of the sample's cache key.
    hash: str
    # 1-based display position after the seeded shuffle, and the number of candidates shown.
    position: int = Field(ge=1)
    size: int = Field(ge=1)


class Verdict(BaseModel):
    """A stored judgement: the outcome plus the identities that make it reproducible."""

    model_config = ConfigDict(extra="forbid")

    id: str
    cache_key: str
    sample_hash: str
    rubric_ref: str
    rubric_hash: str
    judge: str
    profile_hash: str
    axes: dict[str, AxisResult]
    usage: Usage
    error: str | None = None
    latency_ms: float
    clipped: bool = False
    created_at: float
    # Set for verdicts of a group-mode call (``mode: group``); None for a sample judged on its own.
    group: GroupPlacement | None = None
    # The rubric's own aggregation (an unscored axis leaves both null), stored so that the store can be
    # queried for what passed; a request's options (on_missing) still re-aggregate at read time.
    reward: float | None = None
    passed: bool | None = None

    @property
    def complete(self) -> bool:
        return all(a.status is AxisStatus.ok for a in self.axes.values())
