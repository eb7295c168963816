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
import itertools
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

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
    rate_limited,
    resolve_group_scores,
    resolve_scores,
    server_error,
    verdict_pieces,
)


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
        pieces = verdict_pieces(scores, behaviour.rationale)
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
        pieces = group_verdict_pieces(scores, verdict.rationale)
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
