"""Request shapes of the native reward API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.samples import Message, SampleIn
from rubrics.errors import RubricJudgeError

# What a failed item's reward is: null, the rubric's lowest reward, or the item is left out of the answer.
OnFailure = Literal["null", "floor", "skip"]


class RewardRequestError(RubricJudgeError):
    """A reward request that cannot be served as asked (e.g. it names no judge and none is configured)."""

    status_code = 422


class RewardItemIn(BaseModel):
    """One rollout to reward.

    The conversation is ``messages`` (up to the judged assistant turn; several patient and assistant turns
    for multi-turn dialogues) or a plain ``prompt``; the judged turn is a raw ``completion`` (its
    ``<think>`` block is the CoT) or ``reasoning`` + ``response``. ``group_id`` names the GRPO group; items
    without one are grouped by conversation.
    """

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str | None, Field(max_length=512)] = None
    group_id: Annotated[str | None, Field(max_length=512)] = None
    messages: Annotated[list[Message] | None, Field(min_length=1)] = None
    prompt: str | None = None
    completion: str | None = None
    reasoning: str | None = None
    response: str | None = None
    reference: str | None = None

    @model_validator(mode="after")
    def _one_conversation_one_turn(self) -> RewardItemIn:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give either `messages` or `prompt`")
        if self.completion is not None and (self.response is not None or self.reasoning is not None):
            raise ValueError("give either `completion` or `reasoning` + `response`, not both")
        if self.completion is None and self.response is None:
            raise ValueError("an item needs `completion` or `response` (with optional `reasoning`)")
        return self

    def texts(self) -> list[tuple[str, str]]:
        """(field, text) of every text the item carries, for length limits."""
        found = [(name, getattr(self, name)) for name in ("prompt", "completion", "reasoning", "response", "reference")]
        found += [(f"messages[{i}].content", m.content) for i, m in enumerate(self.messages or [])]
        return [(name, text) for name, text in found if text is not None]

    def sample_in(self) -> SampleIn:
        messages = self.messages or [Message(role="user", content=self.prompt or "")]
        return SampleIn(
            id=self.id,
            messages=messages,
            reasoning=self.reasoning,
            response=self.response,
            completion=self.completion,
            reference=self.reference,
        )


class RewardsRequest(BaseModel):
    """``POST /v1/rewards``. Items are checked one by one: a malformed item gets status ``invalid``."""

    model_config = ConfigDict(extra="forbid")

    # Default: the server's RJ_REWARD_RUBRIC and RJ_REWARD_JUDGE.
    rubric: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    judge: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    items: list[Any]
    on_failure: OnFailure = "null"
    # What the judge writes before each score; default: the profile's. A reward needs only the scores, so
    # "none" is the cheapest answer (its verdicts are cached apart from the profile's own).
    rationale: Literal["full", "brief", "none"] | None = None
    # The whole call's budget; what is unfinished by then follows ``on_failure`` (and is still cached later).
    deadline_ms: Annotated[int | None, Field(gt=0, le=3_600_000)] = None
    cache: bool = True


class RewardsRequestSchema(RewardsRequest):
    """The documented shape of ``POST /v1/rewards`` (items as :class:`RewardItemIn`), for OpenAPI."""

    items: list[RewardItemIn]
