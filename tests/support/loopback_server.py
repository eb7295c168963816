"""The loopback OpenAI-compatible judge server: scripting, lifecycle and the HTTP side of a request (recording,
concurrency counts, latency and stalls). What it answers is built by :class:`CompletionAnswers`; the module
:mod:`tests.support.openai_server` documents it all and re-exports it."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Literal

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.chat_request import ChatRequest
from tests.support.completion_answers import CompletionAnswers
from tests.support.judge_behaviours import Behaviour, BehaviourSource, HTTPError, RecordedCall, Verdict
from tests.support.prefix_cache import PrefixCache, half_chars, tokenizer_counter


class OpenAIServer(CompletionAnswers):
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
        self.count_tokens = tokenizer_counter(tokenizer) if tokenizer else half_chars
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

    async def _sleep(self, seconds: float, http_request: Request) -> None:
        """Sleep, but stop early when the client has gone or the server stops (shutdown never waits)."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))
            if await http_request.is_disconnected():
                return


def serve_forever(server: OpenAIServer) -> Iterator[OpenAIServer]:
    """Generator for fixtures: a started server, stopped afterwards."""
    with server:
        yield server
