"""The adapters' shared client: pooling per event loop, retries only on errors worth retrying."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from judge.adapters.client import ClientConfig, RewardServerError, is_retryable, retry_wait_s, shared_client
from tests.judge.adapters.conftest import serve
from tests.support.live_server import free_port


class Flaky:
    """A server answering scripted statuses (then 200), counting the requests it saw."""

    def __init__(self) -> None:
        self.script: deque[tuple[int, dict[str, str], float]] = deque()
        self.seen = 0

    async def endpoint(self, request: Request) -> JSONResponse:
        self.seen += 1
        body = await request.json()
        if self.script:
            status, headers, delay = self.script.popleft()
            await asyncio.sleep(delay)
            if status != 200:
                return JSONResponse({"error": "scripted"}, status_code=status, headers=headers)
        return JSONResponse({"echo": body, "auth": request.headers.get("authorization")})

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/rewards", self.endpoint, methods=["POST"])])


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, str]]:
    server = Flaky()
    for url in serve(server.app):
        yield server, url


def _config(url: str, **changes: Any) -> ClientConfig:
    return ClientConfig(**{"base_url": url, "max_retries": 3, "timeout_s": 5.0, **changes})


async def test_429_and_5xx_are_retried_honouring_retry_after(flaky: tuple[Flaky, str]) -> None:
    server, url = flaky
    server.script.extend([(503, {}, 0.0), (429, {"retry-after": "0"}, 0.0), (502, {"retry-after": "0.01"}, 0.0)])
    client = shared_client(_config(url, api_key="k-1"))
    answer = await client.post("/v1/rewards", {"items": ["问"]})
    assert answer == {"echo": {"items": ["问"]}, "auth": "Bearer k-1"}
    assert server.seen == 4 and client.attempts == 4


async def test_a_4xx_is_not_retried(flaky: tuple[Flaky, str]) -> None:
    server, url = flaky
    server.script.append((422, {}, 0.0))
    with pytest.raises(RewardServerError, match="HTTP 422"):
        await shared_client(_config(url)).post("/v1/rewards", {})
    assert server.seen == 1


async def test_retries_run_out(flaky: tuple[Flaky, str]) -> None:
    server, url = flaky
    server.script.extend([(500, {"retry-after": "0"}, 0.0)] * 5)
    with pytest.raises(RewardServerError, match="HTTP 500"):
        await shared_client(_config(url, max_retries=2)).post("/v1/rewards", {})
    assert server.seen == 3


async def test_a_timeout_is_retried(flaky: tuple[Flaky, str]) -> None:
    server, url = flaky
    server.script.append((200, {}, 1.0))
    client = shared_client(_config(url, timeout_s=0.2))
    assert (await client.post("/v1/rewards", {"n": 1}))["echo"] == {"n": 1}
    assert client.attempts == 2


async def test_an_unreachable_server_is_retried_then_reported() -> None:
    client = shared_client(_config(f"http://127.0.0.1:{free_port()}", max_retries=1))
    with pytest.raises(RewardServerError, match="cannot reach"):
        await client.post("/v1/rewards", {})
    assert client.attempts == 2


async def test_one_client_per_config_and_event_loop() -> None:
    config = _config("http://127.0.0.1:9")
    assert shared_client(config) is shared_client(config)
    assert shared_client(config) is not shared_client(_config("http://127.0.0.1:9", timeout_s=1.0))


def _status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://x/v1/rewards")
    return httpx.HTTPStatusError(
        "e", request=request, response=httpx.Response(status, headers=headers, request=request)
    )


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (_status_error(500), True),
        (_status_error(503), True),
        (_status_error(429), True),
        (_status_error(408), True),
        (_status_error(400), False),
        (_status_error(401), False),
        (_status_error(404), False),
        (_status_error(422), False),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (ValueError("bug"), False),
    ],
)
def test_what_is_worth_retrying(exc: BaseException, retry: bool) -> None:
    assert is_retryable(exc) is retry


def test_waits_follow_retry_after_else_back_off() -> None:
    assert retry_wait_s(_status_error(429, {"retry-after": "7"}), 1) == 7.0
    assert 0.0 <= retry_wait_s(_status_error(503), 3) <= 2.0
    assert retry_wait_s(httpx.ConnectError("x"), 30) <= 30.0
