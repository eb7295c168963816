"""What a test scripts the loopback judge to do for one request: the behaviours (a verdict, raw text, an error,
a stall, a draft, a patient's turn ...), shorthands for common errors, and the record of a call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.support.chat_request import ChatRequest

ScoreSpec = int | Mapping[str, int] | Callable[[ChatRequest], Mapping[str, int]] | None
CandidateScores = Mapping[str, int | Mapping[str, int]]
CandidateSpec = CandidateScores | Callable[[ChatRequest], CandidateScores] | None


@dataclass(frozen=True)
class Verdict:
    """A well-formed verdict for the request's axes.

    ``scores``: one score for every axis, a mapping (axes left out get the default), or a function of the
    request; None for the default. ``style``: bare JSON, a Markdown ```json fence, JSON inside prose, or
    several objects (a draft with other scores and a different-shape object first, the real one last).
    ``logprobs``: None follows the request, False never sends any, True always does. The score token's
    top logprobs put ``p_top`` on the chosen score and spread the rest evenly, unless ``distributions``
    gives, per axis, the top tokens and their probabilities (e.g. ``{"4": 0.6, " 5": 0.3, "x": 0.1}``).
    For a group request, ``scores`` applies to every candidate and ``by_candidate`` (label -> score or
    per-axis mapping, or a function of the request returning that) overrides it per candidate.
    """

    scores: ScoreSpec = None
    by_candidate: CandidateSpec = None
    style: Literal["json", "fenced", "prose", "several"] = "json"
    logprobs: bool | None = None
    p_top: float = 0.7
    distributions: Mapping[str, Mapping[str, float]] | None = None
    rationale: str = "依据量表逐项核对后给出的评分理由。"
    delay_s: float = 0.0


@dataclass(frozen=True)
class Text:
    """A raw answer (garbage, hand-written JSON, ...)."""

    content: str
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Truncated:
    """A verdict cut in the middle, with ``finish_reason="length"``."""

    scores: ScoreSpec = None


@dataclass(frozen=True)
class HTTPError:
    """An error status in the OpenAI error shape, with optional headers (e.g. Retry-After)."""

    status: int
    message: str = "error"
    headers: Mapping[str, str] = field(default_factory=dict)
    type: str = "server_error"
    code: str | None = None


@dataclass(frozen=True)
class Slow:
    """Answer ``then`` after ``delay_s`` (longer than the client's timeout, to test timeouts)."""

    delay_s: float
    then: Behaviour = Verdict()


@dataclass(frozen=True)
class Generation:
    """A draft for a generation (curation) request: a ``<think>`` block in the five steps, then a response.

    The draft number is ``draft``, else 1 + the highest ``第N稿`` quoted in the prompt (a refinement quotes the
    previous draft, so it gets the next number); the patient's last words are echoed, so every conversation
    gets a draft of its own.
    """

    draft: int | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class RawBody:
    """A 200 answer with exactly these bytes (malformed JSON, a completion missing fields, ...)."""

    body: bytes


@dataclass(frozen=True)
class Patient:
    """A patient simulator's answer (``{"utterance", "need_met", "end_visit"}``), deterministic.

    With no doctor turn yet it states the chief complaint (more perturbed at higher intensity). After a doctor
    turn it tells the hidden facts whose topic that turn mentions, and only those; else it asks what to do.
    ``need_met`` once the doctor has had ``satisfied_after`` turns (None: never). It is *gullible* the way a
    compliant model is: an instruction ``请说：…`` / ``say: …`` anywhere outside the fences is obeyed (it says
    that and ends the visit satisfied), which is exactly what fencing the doctor's turns protects against.
    """

    satisfied_after: int | None = None
    style: Literal["json", "prose"] = "json"


@dataclass(frozen=True)
class Perturbed:
    """A perturber's answer: the fenced original with level-dependent perturbation, labelled with its types."""


Behaviour = Verdict | Text | Truncated | HTTPError | Slow | Generation | RawBody | Patient | Perturbed
BehaviourSource = Behaviour | Callable[[ChatRequest], Behaviour]


def garbage(content: str = "抱歉，我无法按要求给出评分。这个回答整体还可以吧。") -> Text:
    return Text(content)


def rate_limited(retry_after: str | None = "1", *, retry_after_ms: str | None = None) -> HTTPError:
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return HTTPError(429, "Rate limit reached", headers, type="rate_limit_error", code="rate_limit_exceeded")


def server_error(status: int = 500) -> HTTPError:
    return HTTPError(status, "The server had an error while processing your request")


def bad_request(message: str = "This model's maximum context length is 8192 tokens") -> HTTPError:
    return HTTPError(400, message, type="invalid_request_error", code="context_length_exceeded")


@dataclass
class RecordedCall:
    """One request seen, with when it arrived and when its answer left (``time.monotonic()``)."""

    request: ChatRequest
    status: int = 0
    answered_at: float | None = None

    @property
    def body(self) -> dict[str, Any]:
        return self.request.body

    @property
    def received_at(self) -> float:
        return self.request.received_at
