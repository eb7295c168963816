"""A loopback server speaking the OpenAI chat-completions protocol, scriptable per test.

In tests::

    with OpenAIServer() as server:              # or the ``openai_server`` fixture
        server.script(rate_limited(retry_after="1"), Verdict(scores=2))
        server.default = lambda request: Verdict(scores={"safety": 1})
        ...  # point an AsyncOpenAI client at server.url
        assert server.calls == 2 and server.requests[-1].body["model"] == "m"

Scripted behaviours are used one per request, in arrival order; when the script is empty, ``default``
answers (a behaviour, or a function of the request returning one). The default verdict works for any
rubric: axis keys come from the request's ``response_format`` JSON schema, else from the prompt's
``RUBRIC_AXES:`` line, and each score is derived from a hash of the fenced (judged) texts.

Group-mode prompts (several candidate answers, ``RUBRIC_CANDIDATES:`` line or a ``responses`` schema) get a
group verdict ``{"responses": {label: {axis: {rationale, score}}}}``; by default each candidate gets the scores
it would get judged alone. ``tie_rate`` (benchmarks) makes that fraction of samples share their prompt's scores,
as a strict judge does with similar rollouts; ``vary_confidence`` gives each score token its own top-logprob mass.

A request that asks for no axes at all (a generator's, in curation) gets a ``Generation`` draft instead of a
verdict: a CoT in the five steps and a response, numbered ``第N稿`` so that a refinement gets the next draft.

For benchmarks, in a separate process: ``python -m tests.support.openai_server --port P --latency-ms 100``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import itertools
import math
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Deliberately not imported from judge.prompts: the server reads prompts as a third party would.
_AXES_LINE = re.compile(r"^RUBRIC_AXES:[ \t]*(.*)$", re.MULTILINE)
_CANDIDATES_LINE = re.compile(r"^RUBRIC_CANDIDATES:[ \t]*(.*)$", re.MULTILINE)
# Fences of the judged turn; the others (conversation, reference) are context shared by a group's candidates.
_JUDGED_FENCES = ("REASONING", "RESPONSE")
_FENCE = re.compile(r"<<<([A-Z_]+)_([0-9a-f]{8,})>>>\n(.*?)\n<<<END_\1_\2>>>", re.DOTALL)
_TOKEN_CHUNK = 4


@dataclass(frozen=True)
class ChatRequest:
    """A chat-completions request as the server received it."""

    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float  # time.monotonic(), comparable with the test process's clock

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def prompt(self) -> str:
        """Every message's text, joined."""
        return "\n".join(str(m.get("content") or "") for m in self.messages if isinstance(m, dict))

    @property
    def fenced_texts(self) -> list[str]:
        """The texts inside the prompt's nonce fences (the judged material)."""
        return [match.group(3) for match in _FENCE.finditer(self.prompt)]

    @property
    def axis_keys(self) -> list[str]:
        """Axis keys from the response_format schema, else from the last ``RUBRIC_AXES:`` line outside fences."""
        try:
            axes = self.body["response_format"]["json_schema"]["schema"]["properties"]["axes"]
            return [str(key) for key in axes.get("required") or axes["properties"]]
        except (KeyError, TypeError, AttributeError):
            pass
        found = _AXES_LINE.findall(_FENCE.sub("", self.prompt))
        if not found:
            return []
        return [key.strip() for key in found[-1].split(",") if key.strip()]

    @property
    def fenced(self) -> list[tuple[str, str]]:
        """(label, text) of every fence, in order."""
        return [(match.group(1), match.group(3)) for match in _FENCE.finditer(self.prompt)]

    @property
    def candidate_labels(self) -> list[str]:
        """A group request's candidate labels (schema ``responses``, else ``RUBRIC_CANDIDATES:``); [] otherwise."""
        try:
            responses = self.body["response_format"]["json_schema"]["schema"]["properties"]["responses"]
            return [str(label) for label in responses.get("required") or responses["properties"]]
        except (KeyError, TypeError, AttributeError):
            pass
        prompt = self.prompt
        if "RUBRIC_CANDIDATES:" not in prompt:  # most requests: skip the fence scan
            return []
        found = _CANDIDATES_LINE.findall(_FENCE.sub("", prompt))
        if not found:
            return []
        return [label.strip() for label in found[-1].split(",") if label.strip()]

    def judged_texts(self, candidate: str | None = None) -> list[str]:
        """The fenced texts one candidate is judged on (all of them for a single-sample request).

        For a group candidate: the shared context plus its own reasoning and response, in the order a
        single-sample prompt has them, so a candidate's default scores equal those it gets judged alone.
        """
        if candidate is None:
            return [text for _, text in self.fenced]
        own = {f"{name}_{candidate}" for name in _JUDGED_FENCES}
        return [text for label, text in self.fenced if label in own or not label.startswith(_JUDGED_FENCES)]

    @property
    def wants_logprobs(self) -> bool:
        return bool(self.body.get("logprobs"))

    @property
    def top_logprobs(self) -> int:
        value = self.body.get("top_logprobs")
        return int(value) if isinstance(value, int) and value > 0 else 1


def default_scores(
    request: ChatRequest, *, candidate: str | None = None, tie_rate: float | None = None
) -> dict[str, int]:
    """Scores 1..5 derived from the judged texts: the same sample gets the same scores whatever the nonce.

    ``candidate``: one candidate of a group request. ``tie_rate``: that fraction of samples (chosen by
    their hash) get their conversation's scores instead of their own, so rollouts of one prompt tie.
    """
    texts = request.judged_texts(candidate)
    judged = "\x00".join(texts) or request.prompt
    if tie_rate is not None and hashlib.sha256(f"tie\x00{judged}".encode()).digest()[0] < tie_rate * 256:
        # Scored as its conversation is: every tied rollout of one prompt gets the same scores.
        shared = [text for label, text in request.fenced if not label.startswith(_JUDGED_FENCES)]
        judged = "\x00".join(["shared", *shared])
    scores = {}
    for key in request.axis_keys:
        digest = hashlib.sha256(f"{key}\x00{judged}".encode()).digest()
        scores[key] = 1 + digest[0] % 5
    return scores


def confidence(request: ChatRequest, key: str, candidate: str | None = None) -> float:
    """A per-sample, per-axis top probability in [0.45, 0.95] (``vary_confidence``)."""
    judged = "\x00".join(request.judged_texts(candidate))
    return 0.45 + 0.5 * hashlib.sha256(f"conf\x00{key}\x00{judged}".encode()).digest()[0] / 255


ScoreSpec = int | Mapping[str, int] | Callable[[ChatRequest], Mapping[str, int]] | None
CandidateScores = Mapping[str, int | Mapping[str, int]]
CandidateSpec = CandidateScores | Callable[[ChatRequest], CandidateScores] | None
# A score digit's tag in a verdict's pieces: the axis key, or (candidate label, axis key) in a group verdict.
Tag = str | tuple[str, str]


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


_DRAFT_NUMBER = re.compile(r"第(\d+)稿")


def generation_text(request: ChatRequest, behaviour: Generation) -> str:
    draft = behaviour.draft or 1 + max((int(n) for n in _DRAFT_NUMBER.findall(request.prompt)), default=0)
    patient = [text for label, text in request.fenced if label == "PATIENT_MESSAGE"]
    if not patient:
        patient = [str(m.get("content") or "") for m in request.messages if m.get("role") == "user"]
    words = (patient[-1] if patient else "").replace("\n", " ")[:60]
    return (
        f"<think>\n1. 情绪感知：患者语气焦虑，需要先安抚（第{draft}稿）。\n"
        f"2. 扰动识别：“{words}”中有口语化、含糊的表达。\n"
        f"3. 话语纠正：患者描述为：{words}\n"
        f"4. 主诉提取：{words[:20]}，想知道该怎么办。\n"
        f"5. 医学推理：先排除急症，再考虑常见病因（第{draft}稿）。\n</think>\n\n"
        f"别太担心，建议尽快到医院就诊检查；如果症状突然加重，请立即拨打120（第{draft}稿）。"
    )


@dataclass(frozen=True)
class RawBody:
    """A 200 answer with exactly these bytes (malformed JSON, a completion missing fields, ...)."""

    body: bytes


Behaviour = Verdict | Text | Truncated | HTTPError | Slow | Generation | RawBody
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


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _resolve_scores(
    spec: ScoreSpec, request: ChatRequest, *, candidate: str | None = None, tie_rate: float | None = None
) -> dict[str, int]:
    scores = default_scores(request, candidate=candidate, tie_rate=tie_rate)
    if isinstance(spec, int):
        return dict.fromkeys(scores, spec)
    if callable(spec):
        scores.update(spec(request))
    elif spec is not None:
        scores.update(spec)
    return scores


def _resolve_group_scores(
    verdict: Verdict, request: ChatRequest, labels: list[str], tie_rate: float | None
) -> dict[str, dict[str, int]]:
    overrides = verdict.by_candidate(request) if callable(verdict.by_candidate) else verdict.by_candidate or {}
    scores = {}
    for label in labels:
        scores[label] = _resolve_scores(verdict.scores, request, candidate=label, tie_rate=tie_rate)
        override = overrides.get(label)
        if isinstance(override, int):
            scores[label] = dict.fromkeys(scores[label], override)
        elif override is not None:
            scores[label].update(override)
    return scores


def _group_verdict_pieces(scores: Mapping[str, Mapping[str, int]], rationale: str) -> list[tuple[str, Tag | None]]:
    """A group verdict as pieces; a piece tagged (label, axis) is that candidate's score digit for that axis."""
    pieces: list[tuple[str, Tag | None]] = [('{"responses": {', None)]
    for i, (label, axes) in enumerate(scores.items()):
        pieces.append((f"{', ' if i else ''}{_dumps(label)}: {{", None))
        for text, key in _verdict_pieces(axes, rationale)[1:-1]:
            pieces.append((text, (label, key) if key is not None else None))
        pieces.append(("}", None))
    pieces.append(("}}", None))
    return pieces


def _verdict_pieces(scores: Mapping[str, int], rationale: str) -> list[tuple[str, str | None]]:
    """The verdict JSON as pieces; a piece tagged with an axis key is that axis's score digit."""
    pieces: list[tuple[str, str | None]] = [('{"axes": {', None)]
    for i, (key, score) in enumerate(scores.items()):
        head = ", " if i else ""
        pieces.append((f'{head}{_dumps(key)}: {{"rationale": {_dumps(rationale)}, "score": ', None))
        pieces.append((str(score), key))
        pieces.append(("}", None))
    pieces.append(("}}", None))
    return pieces


@dataclass(frozen=True)
class _Tokens:
    """Token objects of ``choices[0].logprobs.content``, already serialised (comma-joined), and their count."""

    json: bytes
    count: int


def _token_json(text: str, logprob: float, top: tuple[tuple[str, float], ...]) -> bytes:
    return orjson.dumps(
        {
            "token": text,
            "logprob": logprob,
            "bytes": list(text.encode()),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top],
        }
    )


# The pieces between score digits repeat from request to request (same keys, same rationale), so their
# tokens are serialised once: this keeps the server far from being a benchmark's bottleneck.
@functools.lru_cache(maxsize=8192)
def _text_tokens(text: str, top_n: int) -> _Tokens:
    chunks = [text[start : start + _TOKEN_CHUNK] for start in range(0, len(text), _TOKEN_CHUNK)]
    return _Tokens(b",".join(_token_json(c, 0.0, ((c, 0.0),)[:top_n]) for c in chunks), len(chunks))


@functools.lru_cache(maxsize=8192)
def _digit_token(text: str, top: tuple[tuple[str, float], ...], fallback_logprob: float) -> _Tokens:
    return _Tokens(_token_json(text, dict(top).get(text, fallback_logprob), top), 1)


def _score_top(verdict: Verdict, key: str, score: int, p_top: float | None = None) -> tuple[tuple[str, float], ...]:
    p_top = verdict.p_top if p_top is None else p_top
    if verdict.distributions is not None and key in verdict.distributions:
        probabilities = dict(verdict.distributions[key])
    else:
        rest = (1.0 - p_top) / 4
        probabilities = {str(level): p_top if level == score else rest for level in range(1, 6)}
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    return tuple((token, math.log(p)) for token, p in ranked if p > 0)


def _logprob_tokens(
    pieces: list[tuple[str, Tag | None]],
    verdict: Verdict,
    scores: Mapping[Tag, int],
    top_n: int,
    p_tops: Mapping[Tag, float] | None = None,
) -> _Tokens:
    parts = []
    for text, tag in pieces:
        if tag is None:
            parts.append(_text_tokens(text, top_n))
        else:
            key = tag if isinstance(tag, str) else tag[1]
            p_top = p_tops.get(tag) if p_tops is not None else None
            top = _score_top(verdict, key, scores[tag], p_top)[:top_n]
            parts.append(_digit_token(text, top, math.log(verdict.p_top if p_top is None else p_top)))
    return _Tokens(b",".join(part.json for part in parts if part.count), sum(part.count for part in parts))


class OpenAIServer:
    """The loopback server: start with ``with OpenAIServer() as server`` or ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        keep_requests: int = 256,
        tie_rate: float | None = None,
        vary_confidence: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_s = latency_ms / 1000.0
        self.tie_rate = tie_rate
        self.vary_confidence = vary_confidence
        self.default: BehaviourSource = Verdict()
        self.calls = 0
        # Requests being answered now, and the most seen at once (to check a client's concurrency cap).
        self.in_flight = 0
        self.max_in_flight = 0
        # Bumped by reset(): answers still running from before it don't count towards in_flight.
        self._generation = 0
        self.requests: deque[RecordedCall] = deque(maxlen=keep_requests)
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    # -- scripting ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL for an OpenAI client (``…/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours, one per coming request."""
        with self._lock:
            self._script.extend(behaviours)

    @property
    def pending(self) -> int:
        """Scripted behaviours not yet used."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the script, the default, the counters and the recorded requests."""
        with self._lock:
            self._script.clear()
            self.default = Verdict()
            self.calls = 0
            self._generation += 1
            self.in_flight = self.max_in_flight = 0
            self.requests.clear()

    @property
    def last_request(self) -> ChatRequest:
        return self.requests[-1].request

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", backlog=4096, timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="openai-loopback", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("loopback OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- HTTP --------------------------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        body = {
            "object": "list",
            "data": [{"id": "loopback-judge", "object": "model", "created": 0, "owned_by": "test"}],
        }
        return Response(orjson.dumps(body), media_type="application/json")

    def _next(self, request: ChatRequest) -> Behaviour:
        with self._lock:
            self.calls += 1
            if self._script:
                return self._script.popleft()
            source = self.default
        return source(request) if callable(source) else source

    async def _chat_completions(self, http_request: Request) -> Response:
        received = time.monotonic()
        try:
            body = orjson.loads(await http_request.body())
        except orjson.JSONDecodeError:
            return self._error(HTTPError(400, "body is not JSON", type="invalid_request_error"))
        request = ChatRequest(body=body, headers=dict(http_request.headers), received_at=received)
        record = RecordedCall(request)
        with self._lock:
            generation = self._generation
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            behaviour = self._next(request)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            response = await self._answer(behaviour, request, http_request)
        finally:
            with self._lock:
                if generation == self._generation:
                    self.in_flight -= 1
        record.status = response.status_code
        record.answered_at = time.monotonic()
        return response

    async def _sleep(self, seconds: float, http_request: Request) -> None:
        """Sleep, but stop early when the client has gone or the server stops (shutdown never waits)."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))
            if await http_request.is_disconnected():
                return

    async def _answer(self, behaviour: Behaviour, request: ChatRequest, http_request: Request) -> Response:
        if isinstance(behaviour, Slow):
            await self._sleep(behaviour.delay_s, http_request)
            return await self._answer(behaviour.then, request, http_request)
        if isinstance(behaviour, HTTPError):
            return self._error(behaviour)
        if isinstance(behaviour, RawBody):
            return Response(behaviour.body, media_type="application/json")
        if isinstance(behaviour, Text):
            return self._completion(request, behaviour.content, behaviour.finish_reason, None)
        labels = request.candidate_labels
        # A request that asks for no axes is not a judge call: a verdict makes no sense there, a draft does.
        if isinstance(behaviour, Verdict) and not labels and not request.axis_keys:
            behaviour = Generation()
        if isinstance(behaviour, Generation):
            return self._completion(request, generation_text(request, behaviour), behaviour.finish_reason, None)
        if labels and isinstance(behaviour, Truncated):
            group = {label: _resolve_scores(behaviour.scores, request, candidate=label) for label in labels}
            content = "".join(text for text, _ in _group_verdict_pieces(group, "依据量表逐项核对"))
            return self._completion(request, content[: len(content) // 2], "length", None)
        if labels and isinstance(behaviour, Verdict):
            if behaviour.delay_s:
                await self._sleep(behaviour.delay_s, http_request)
            return self._group_answer(behaviour, request, labels)
        scores = _resolve_scores(behaviour.scores, request, tie_rate=self.tie_rate)
        if isinstance(behaviour, Truncated):
            content = "".join(text for text, _ in _verdict_pieces(scores, "依据量表逐项核对"))
            return self._completion(request, content[: len(content) // 2], "length", None)
        if behaviour.delay_s:
            await self._sleep(behaviour.delay_s, http_request)
        pieces = _verdict_pieces(scores, behaviour.rationale)
        if behaviour.style == "fenced":
            pieces = [("```json\n", None), *pieces, ("\n```\n以上是我的评分。", None)]
        elif behaviour.style == "prose":
            pieces = [("好的，评估如下：\n", None), *pieces, ("\n请参考以上评分。", None)]
        elif behaviour.style == "several":
            draft = "".join(text for text, _ in _verdict_pieces(dict.fromkeys(scores, 1), "草稿"))
            pieces = [(f'{{"note": "先打草稿"}}\n草稿：{draft}\n最终结果：\n', None), *pieces]
        content = "".join(text for text, _ in pieces)
        send_logprobs = behaviour.logprobs if behaviour.logprobs is not None else request.wants_logprobs
        p_tops: dict[Tag, float] | None = None
        if self.vary_confidence:
            p_tops = {key: confidence(request, key) for key in scores}
        tagged: list[tuple[str, Tag | None]] = list(pieces)
        by_tag: dict[Tag, int] = {key: score for key, score in scores.items()}  # widens the key type to Tag
        logprobs = _logprob_tokens(tagged, behaviour, by_tag, request.top_logprobs, p_tops) if send_logprobs else None
        return self._completion(request, content, "stop", logprobs)

    def _group_answer(self, verdict: Verdict, request: ChatRequest, labels: list[str]) -> Response:
        scores = _resolve_group_scores(verdict, request, labels, self.tie_rate)
        pieces = _group_verdict_pieces(scores, verdict.rationale)
        if verdict.style == "fenced":
            pieces = [("```json\n", None), *pieces, ("\n```", None)]
        elif verdict.style == "prose":
            pieces = [("好的，各候选评估如下：\n", None), *pieces, ("\n请参考以上评分。", None)]
        elif verdict.style == "several":
            draft = {label: dict.fromkeys(axes, 1) for label, axes in scores.items()}
            draft_text = "".join(text for text, _ in _group_verdict_pieces(draft, "草稿"))
            pieces = [(f"草稿：{draft_text}\n最终结果：\n", None), *pieces]
        content = "".join(text for text, _ in pieces)
        send_logprobs = verdict.logprobs if verdict.logprobs is not None else request.wants_logprobs
        if not send_logprobs:
            return self._completion(request, content, "stop", None)
        flat: dict[Tag, int] = {(label, key): score for label, axes in scores.items() for key, score in axes.items()}
        p_tops: dict[Tag, float] | None = None
        if self.vary_confidence:
            p_tops = {tag: confidence(request, tag[1], tag[0]) for tag in flat if isinstance(tag, tuple)}
        return self._completion(
            request, content, "stop", _logprob_tokens(pieces, verdict, flat, request.top_logprobs, p_tops)
        )

    def _completion(self, request: ChatRequest, content: str, finish_reason: str, logprobs: _Tokens | None) -> Response:
        prompt_tokens = max(1, len(request.prompt) // 2)
        completion_tokens = logprobs.count if logprobs is not None else max(1, len(content) // 2)
        body = {
            "id": f"chatcmpl-loopback-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.body.get("model", "loopback-judge"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                    "logprobs": {"content": orjson.Fragment(b"[" + logprobs.json + b"]")}
                    if logprobs is not None
                    else None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return Response(orjson.dumps(body), media_type="application/json")

    @staticmethod
    def _error(error: HTTPError) -> Response:
        body = {"error": {"message": error.message, "type": error.type, "param": None, "code": error.code}}
        return Response(
            orjson.dumps(body), status_code=error.status, headers=dict(error.headers), media_type="application/json"
        )


def serve_forever(server: OpenAIServer) -> Iterator[OpenAIServer]:
    """Generator for fixtures: a started server, stopped afterwards."""
    with server:
        yield server


_LATENCY_ENV = "LOOPBACK_OPENAI_LATENCY_MS"
_TIE_RATE_ENV = "LOOPBACK_OPENAI_TIE_RATE"
_VARY_CONFIDENCE_ENV = "LOOPBACK_OPENAI_VARY_CONFIDENCE"


def _options_from_env() -> dict[str, Any]:
    tie_rate = os.environ.get(_TIE_RATE_ENV)
    return {
        "latency_ms": float(os.environ.get(_LATENCY_ENV, "0")),
        "tie_rate": float(tie_rate) if tie_rate else None,
        "vary_confidence": os.environ.get(_VARY_CONFIDENCE_ENV) == "1",
    }


def create_app() -> Starlette:
    """App factory for multi-worker runs (``--workers``): options from ``LOOPBACK_OPENAI_*`` variables."""
    return OpenAIServer(keep_requests=16, **_options_from_env()).app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback OpenAI-compatible judge server (tests, benchmarks)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the port")
    parser.add_argument("--tie-rate", type=float, default=None, help="fraction of samples scored as their prompt")
    parser.add_argument("--vary-confidence", action="store_true", help="per-sample top-logprob mass of scores")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"host": args.host, "port": args.port, "access_log": False, "backlog": 4096}
    os.environ[_LATENCY_ENV] = str(args.latency_ms)
    if args.tie_rate is not None:
        os.environ[_TIE_RATE_ENV] = str(args.tie_rate)
    os.environ[_VARY_CONFIDENCE_ENV] = "1" if args.vary_confidence else "0"
    if args.workers > 1:
        uvicorn.run("tests.support.openai_server:create_app", factory=True, workers=args.workers, **options)
        return
    uvicorn.run(OpenAIServer(keep_requests=16, **_options_from_env()).app, **options)


if __name__ == "__main__":
    main()
