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

Prefix cache: like a provider's (DeepSeek, OpenAI, vLLM/SGLang prefix caching), the server remembers the
prompts it has seen in blocks of ``PREFIX_BLOCK_CHARS`` characters and reports how much of each prompt's start
it had seen before, as ``usage.prompt_tokens_details.cached_tokens`` (``usage_style="openai"``) or DeepSeek's
``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens`` (``usage_style="deepseek"``). Tokens are counted as
characters / 2 throughout, or by a real tokenizer (``tokenizer=`` a ``tokenizer.json``), so shares are measured,
not assumed. ``rationale_chars`` makes full rationales that
long (benchmarks: realistic completion sizes); a request asking for brief rationales or none gets them.
``stall_rate`` stalls that fraction of calls (drawn at random per call, seeded) for ``stall_s`` seconds; a hedge of a
stalled call is a call of its own and may stall too, as at a real provider (stalls are per request, not per body).

For benchmarks, in a separate process: ``python -m tests.support.openai_server --port P --latency-ms 100``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import random
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any, Literal

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.judge_answers import (  # noqa: F401 - re-exported: tests import behaviours from here
    Behaviour,
    BehaviourSource,
    CandidateScores,
    CandidateSpec,
    ChatRequest,
    Generation,
    HTTPError,
    Patient,
    Perturbed,
    RawBody,
    RecordedCall,
    ScoreSpec,
    Slow,
    Tag,
    Text,
    Tokens,
    Truncated,
    Verdict,
    bad_request,
    confidence,
    default_scores,
    garbage,
    generation_text,
    group_verdict_pieces,
    logprob_tokens,
    patient_text,
    perturbed_text,
    rate_limited,
    resolve_group_scores,
    resolve_scores,
    server_error,
    verdict_pieces,
)

# The prefix cache's granularity (64 "tokens" of 2 characters; DeepSeek caches in 64-token units) and size.
PREFIX_BLOCK_CHARS = 128
PREFIX_CACHE_BLOCKS = 200_000


class PrefixCache:
    """Which prompt prefixes were seen before, in blocks: a provider's prefix cache, as far as billing shows it."""

    def __init__(self, block_chars: int = PREFIX_BLOCK_CHARS, max_blocks: int = PREFIX_CACHE_BLOCKS) -> None:
        self.block_chars = block_chars
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen_chars(self, text: str) -> int:
        """Characters at the start of ``text`` already cached (whole blocks); then caches all of ``text``'s blocks."""
        digest = hashlib.blake2b(digest_size=16)
        keys = []
        for start in range(0, len(text) - self.block_chars + 1, self.block_chars):
            digest.update(text[start : start + self.block_chars].encode())
            keys.append(digest.copy().digest())
        hit = 0
        with self._lock:
            for key in keys:
                if key not in self._blocks:
                    break
                hit += 1
            for key in keys:
                self._blocks[key] = None
                self._blocks.move_to_end(key)
            while len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)
        return hit * self.block_chars

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()


# What a Prometheus (prometheus-eval) absolute grading prompt asks for: a feedback, then "[RESULT] n".
_PROMETHEUS_MARKERS = ("[RESULT]", "Score Rubrics")


def _cache_text(request: ChatRequest) -> str:
    """The prompt as a chat template lays it out (roles and contents in order): what a prefix cache sees."""
    return "".join(f"<|{m.get('role')}|>{m.get('content') or ''}" for m in request.messages if isinstance(m, dict))


def _half_chars(text: str) -> int:
    return len(text) // 2


def _tokenizer_counter(path: str) -> Callable[[str], int]:
    """Token counts from a Hugging Face ``tokenizer.json`` (the ``tokenizers`` library, offline)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


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
        prefix_cache: bool = True,
        usage_style: Literal["openai", "deepseek"] = "openai",
        rationale_chars: int | None = None,
        stall_rate: float = 0.0,
        stall_s: float = 30.0,
        seed: int = 0,
        tokenizer: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_s = latency_ms / 1000.0
        self.tie_rate = tie_rate
        self.vary_confidence = vary_confidence
        self.prefix_cache = PrefixCache() if prefix_cache else None
        self.usage_style = usage_style
        self.rationale_chars = rationale_chars
        self.stall_rate = stall_rate
        self.stall_s = stall_s
        self.stalled = 0
        # A real tokenizer (a tokenizer.json, e.g. DeepSeek's) counts tokens instead of characters / 2.
        self.count_tokens = _tokenizer_counter(tokenizer) if tokenizer else _half_chars
        self._rng = random.Random(seed)
        # What reset() goes back to (tests change these on the shared server).
        self._configured = (usage_style, rationale_chars, stall_rate, stall_s)
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
            self.stalled = 0
            self.usage_style, self.rationale_chars, self.stall_rate, self.stall_s = self._configured
        if self.prefix_cache is not None:
            self.prefix_cache.clear()

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
        request = ChatRequest(
            body=body,
            headers=dict(http_request.headers),
            received_at=received,
            path=http_request.url.path,
            query=http_request.url.query,
        )
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
            if self.stall_rate and self._stall():
                await self._sleep(self.stall_s, http_request)
            response = await self._answer(behaviour, request, http_request)
        finally:
            with self._lock:
                if generation == self._generation:
                    self.in_flight -= 1
        record.status = response.status_code
        record.answered_at = time.monotonic()
        return response

    def _stall(self) -> bool:
        with self._lock:
            stall = self._rng.random() < self.stall_rate
            self.stalled += stall
        return stall

    def _rationale(self, written: str, request: ChatRequest) -> str | None:
        """The rationale as asked: none, brief (a few characters), or full (``rationale_chars`` long when set)."""
        mode = request.rationale_mode
        if mode == "none":
            return None
        if mode == "brief":
            return written[:20]
        if self.rationale_chars and len(written) < self.rationale_chars:
            return (written * (self.rationale_chars // max(1, len(written)) + 1))[: self.rationale_chars]
        return written

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
        # Simulator and perturber requests (judge.simulator) get a patient's answer whatever the default verdict.
        if isinstance(behaviour, Verdict) and request.is_simulator:
            behaviour = Patient()
        elif isinstance(behaviour, Verdict) and request.is_perturber:
            behaviour = Perturbed()
        if isinstance(behaviour, Patient):
            return self._completion(request, patient_text(request, behaviour), "stop", None)
        if isinstance(behaviour, Perturbed):
            return self._completion(request, perturbed_text(request), "stop", None)
        labels = request.candidate_labels
        # A request that asks for no axes is not a judge call: a verdict makes no sense there, a draft does;
        # unless it is a Prometheus-style absolute grading prompt (benchmarks compare with prometheus-eval).
        if isinstance(behaviour, Verdict) and not labels and not request.axis_keys:
            if _PROMETHEUS_MARKERS[0] in request.prompt and _PROMETHEUS_MARKERS[1] in request.prompt:
                grade = 1 + hashlib.sha256(request.prompt.encode()).digest()[0] % 5
                return self._completion(request, f"Feedback: {behaviour.rationale} [RESULT] {grade}", "stop", None)
            behaviour = Generation()
        if isinstance(behaviour, Generation):
            return self._completion(request, generation_text(request, behaviour), behaviour.finish_reason, None)
        if labels and isinstance(behaviour, Truncated):
            group = {label: resolve_scores(behaviour.scores, request, candidate=label) for label in labels}
            content = "".join(text for text, _ in group_verdict_pieces(group, "依据量表逐项核对"))
            return self._completion(request, content[: len(content) // 2], "length", None)
        if labels and isinstance(behaviour, Verdict):
            if behaviour.delay_s:
                await self._sleep(behaviour.delay_s, http_request)
            return self._group_answer(behaviour, request, labels)
        scores = resolve_scores(behaviour.scores, request, tie_rate=self.tie_rate)
        if isinstance(behaviour, Truncated):
            content = "".join(text for text, _ in verdict_pieces(scores, "依据量表逐项核对"))
            return self._completion(request, content[: len(content) // 2], "length", None)
        if behaviour.delay_s:
            await self._sleep(behaviour.delay_s, http_request)
        pieces = verdict_pieces(scores, self._rationale(behaviour.rationale, request))
        if behaviour.style == "fenced":
            pieces = [("```json\n", None), *pieces, ("\n```\n以上是我的评分。", None)]
        elif behaviour.style == "prose":
            pieces = [("好的，评估如下：\n", None), *pieces, ("\n请参考以上评分。", None)]
        elif behaviour.style == "several":
            # A partial draft (first axis only): a complete one that disagrees would be a parse error.
            draft = "".join(text for text, _ in verdict_pieces(dict.fromkeys(list(scores)[:1], 1), "草稿"))
            pieces = [(f'{{"note": "先打草稿"}}\n草稿：{draft}\n最终结果：\n', None), *pieces]
        content = "".join(text for text, _ in pieces)
        send_logprobs = behaviour.logprobs if behaviour.logprobs is not None else request.wants_logprobs
        p_tops: dict[Tag, float] | None = None
        if self.vary_confidence:
            p_tops = {key: confidence(request, key) for key in scores}
        tagged: list[tuple[str, Tag | None]] = list(pieces)
        by_tag: dict[Tag, int] = {key: score for key, score in scores.items()}  # widens the key type to Tag
        logprobs = logprob_tokens(tagged, behaviour, by_tag, request.top_logprobs, p_tops) if send_logprobs else None
        return self._completion(request, content, "stop", logprobs)

    def _group_answer(self, verdict: Verdict, request: ChatRequest, labels: list[str]) -> Response:
        scores = resolve_group_scores(verdict, request, labels, self.tie_rate)
        pieces = group_verdict_pieces(scores, self._rationale(verdict.rationale, request))
        if verdict.style == "fenced":
            pieces = [("```json\n", None), *pieces, ("\n```", None)]
        elif verdict.style == "prose":
            pieces = [("好的，各候选评估如下：\n", None), *pieces, ("\n请参考以上评分。", None)]
        elif verdict.style == "several":
            draft = {label: dict.fromkeys(list(axes)[:1], 1) for label, axes in list(scores.items())[:1]}
            draft_text = "".join(text for text, _ in group_verdict_pieces(draft, "草稿"))
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
            request, content, "stop", logprob_tokens(pieces, verdict, flat, request.top_logprobs, p_tops)
        )

    def _completion(self, request: ChatRequest, content: str, finish_reason: str, logprobs: Tokens | None) -> Response:
        prompt_tokens = max(1, self.count_tokens(request.prompt))
        completion_tokens = logprobs.count if logprobs is not None else max(1, self.count_tokens(content))
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
            "usage": self._usage(request, prompt_tokens, completion_tokens),
        }
        return Response(orjson.dumps(body), media_type="application/json")

    def _usage(self, request: ChatRequest, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if self.prefix_cache is None:
            return usage
        text = _cache_text(request)
        seen = self.prefix_cache.seen_chars(text)
        cached = min(prompt_tokens, self.count_tokens(text[:seen]) if seen else 0)
        if self.usage_style == "deepseek":
            usage.update(prompt_cache_hit_tokens=cached, prompt_cache_miss_tokens=prompt_tokens - cached)
        else:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        return usage

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
_USAGE_STYLE_ENV = "LOOPBACK_OPENAI_USAGE_STYLE"
_RATIONALE_CHARS_ENV = "LOOPBACK_OPENAI_RATIONALE_CHARS"
_STALL_RATE_ENV = "LOOPBACK_OPENAI_STALL_RATE"
_STALL_S_ENV = "LOOPBACK_OPENAI_STALL_S"
_TOKENIZER_ENV = "LOOPBACK_OPENAI_TOKENIZER"


def _options_from_env() -> dict[str, Any]:
    tie_rate = os.environ.get(_TIE_RATE_ENV)
    rationale_chars = os.environ.get(_RATIONALE_CHARS_ENV)
    return {
        "latency_ms": float(os.environ.get(_LATENCY_ENV, "0")),
        "tie_rate": float(tie_rate) if tie_rate else None,
        "vary_confidence": os.environ.get(_VARY_CONFIDENCE_ENV) == "1",
        "usage_style": os.environ.get(_USAGE_STYLE_ENV, "openai"),
        "rationale_chars": int(rationale_chars) if rationale_chars else None,
        "stall_rate": float(os.environ.get(_STALL_RATE_ENV, "0")),
        "stall_s": float(os.environ.get(_STALL_S_ENV, "30")),
        "tokenizer": os.environ.get(_TOKENIZER_ENV) or None,
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
    parser.add_argument("--usage-style", choices=["openai", "deepseek"], default="openai", help="cached-token fields")
    parser.add_argument("--rationale-chars", type=int, default=None, help="length of a full rationale")
    parser.add_argument("--stall-rate", type=float, default=0.0, help="fraction of calls that stall")
    parser.add_argument("--stall-s", type=float, default=30.0, help="how long a stalled call stalls")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer.json to count tokens with (not chars / 2)")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"host": args.host, "port": args.port, "access_log": False, "backlog": 4096}
    os.environ[_LATENCY_ENV] = str(args.latency_ms)
    if args.tie_rate is not None:
        os.environ[_TIE_RATE_ENV] = str(args.tie_rate)
    os.environ[_VARY_CONFIDENCE_ENV] = "1" if args.vary_confidence else "0"
    os.environ[_USAGE_STYLE_ENV] = args.usage_style
    if args.rationale_chars is not None:
        os.environ[_RATIONALE_CHARS_ENV] = str(args.rationale_chars)
    os.environ[_STALL_RATE_ENV] = str(args.stall_rate)
    os.environ[_STALL_S_ENV] = str(args.stall_s)
    if args.tokenizer:
        os.environ[_TOKENIZER_ENV] = args.tokenizer
    if args.workers > 1:
        uvicorn.run("tests.support.openai_server:create_app", factory=True, workers=args.workers, **options)
        return
    uvicorn.run(OpenAIServer(keep_requests=16, **_options_from_env()).app, **options)


if __name__ == "__main__":
    main()
