"""Samples to judge: input shapes, normalisation and content hashing."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from rubrics.storable import check_storable

Role = Literal["system", "user", "assistant"]

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Role
    content: str

    # NUL cannot be stored (PostgreSQL text/JSONB): refused here, naming the field, not dropped at the insert.
    @field_validator("content")
    @classmethod
    def _storable(cls, value: str) -> str:
        return str(check_storable(value))


class SampleIn(BaseModel):
    """A sample as callers send it.

    ``messages`` is the conversation up to the judged assistant turn. The judged turn is either
    ``reasoning`` + ``response`` or a raw ``completion`` whose ``<think>…</think>`` block is split off.
    """

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str | None, Field(max_length=512)] = None
    messages: Annotated[list[Message], Field(min_length=1)]
    reasoning: str | None = None
    response: str | None = None
    completion: str | None = None
    reference: str | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("id", "reasoning", "response", "completion", "reference", "metadata")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return check_storable(value)

    @model_validator(mode="after")
    def _one_judged_turn(self) -> SampleIn:
        if self.completion is not None and (self.response is not None or self.reasoning is not None):
            raise ValueError("give either `completion` or `reasoning` + `response`, not both")
        if self.completion is None and self.response is None:
            raise ValueError("a sample needs `response` (with optional `reasoning`) or `completion`")
        check_judged_turn(
            self.messages, {"completion": self.completion, "reasoning": self.reasoning, "response": self.response}
        )
        return self


def check_judged_turn(messages: list[Message], texts: dict[str, str | None]) -> None:
    """Refuse what cannot be judged honestly (see :mod:`judge.integrity`), with a machine-readable error type.

    A judged text with chat turn markers (a forged turn) is ``turn_markers``; a conversation without a patient
    turn to answer is ``conversation``. Raised inside validators, they become validation errors with that type:
    a 422 naming the field on ``/v1/score``, an ``invalid`` item with that reason on reward routes and in jobs.
    """
    # Imported here: judge.integrity.facts imports this module.
    from judge.integrity.conversation import conversation_problem
    from judge.integrity.turn_markers import find_turn_markers, turn_marker_message

    for name, text in texts.items():
        families = find_turn_markers(text) if text else []
        if families:
            raise PydanticCustomError("turn_markers", turn_marker_message(name, families))
    problem = conversation_problem(messages)
    if problem is not None:
        raise PydanticCustomError("conversation", problem)


class Sample(BaseModel):
    """A normalised sample; ``hash`` covers everything a judge sees and nothing else."""

    model_config = ConfigDict(frozen=True)

    id: str | None
    messages: tuple[Message, ...]
    reasoning: str
    response: str
    reference: str | None
    metadata: dict[str, Any] | None
    # Set when the CoT or response was cut to a configured limit before judging.
    clipped: bool = False
    hash: str
    # Characters of the CoT and response before clipping (penalties use what the policy wrote, not what the
    # judge saw); -1 when unknown (a Sample built by hand), which falls back to the texts' lengths.
    original_length: int = -1

    @property
    def original_chars(self) -> int:
        return self.original_length if self.original_length >= 0 else len(self.reasoning) + len(self.response)

    def canonical(self) -> dict[str, Any]:
        return canonical_content(self.messages, self.reasoning, self.response, self.reference)


def normalise_text(text: str) -> str:
    """NFC, unified newlines, no trailing white space: equal-looking texts hash equal."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def split_completion(completion: str) -> tuple[str, str]:
    """Split a raw completion into (reasoning, response) at its ``<think>`` block.

    Handles ``<think>…</think>answer``, and ``…</think>answer`` where the chat template already
    opened the block in the prompt (Qwen3). A completion without a block is all response.
    """
    close = completion.rfind(_THINK_CLOSE)
    if close == -1:
        # An unterminated block means the model never got to answer: all of it is reasoning.
        open_at = completion.find(_THINK_OPEN)
        if open_at != -1:
            return completion[open_at + len(_THINK_OPEN) :], completion[:open_at]
        return "", completion
    head = completion[:close]
    open_at = head.find(_THINK_OPEN)
    reasoning = head[open_at + len(_THINK_OPEN) :] if open_at != -1 else head
    return reasoning, completion[close + len(_THINK_CLOSE) :]


def canonical_content(
    messages: tuple[Message, ...] | list[Message], reasoning: str, response: str, reference: str | None
) -> dict[str, Any]:
    return {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "reasoning": reasoning,
        "response": response,
        "reference": reference,
    }


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


_WS_RUN = re.compile(r"[ \t]+\n")


def _trim_lines(text: str) -> str:
    """No spaces or tabs before a newline (the substitution only where one can match: it runs on every text)."""
    return _WS_RUN.sub("\n", text) if " \n" in text or "\t\n" in text else text


def normalise(
    sample: SampleIn, *, max_reasoning_chars: int | None = None, max_response_chars: int | None = None
) -> Sample:
    """Normalise a sample and hash its content; optionally clip over-long CoT/response (flagged)."""
    if sample.completion is not None:
        reasoning, response = split_completion(sample.completion)
    else:
        reasoning, response = sample.reasoning or "", sample.response or ""
    messages = tuple(Message(role=m.role, content=_trim_lines(normalise_text(m.content))) for m in sample.messages)
    reasoning = _trim_lines(normalise_text(reasoning))
    response = _trim_lines(normalise_text(response))
    clipped = False
    original_length = len(reasoning) + len(response)
    if max_reasoning_chars is not None and len(reasoning) > max_reasoning_chars:
        reasoning, clipped = reasoning[:max_reasoning_chars], True
    if max_response_chars is not None and len(response) > max_response_chars:
        response, clipped = response[:max_response_chars], True
    reference = normalise_text(sample.reference) if sample.reference is not None else None
    digest = content_hash(canonical_content(messages, reasoning, response, reference))
    return Sample(
        id=sample.id,
        messages=messages,
        reasoning=reasoning,
        response=response,
        reference=reference,
        metadata=sample.metadata,
        clipped=clipped,
        hash=digest,
        original_length=original_length,
    )
