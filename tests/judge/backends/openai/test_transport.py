"""The SDK's HTTP client: a short path for plain judge calls, the whole httpx2 path for everything else."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import openai
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from judge.backends.openai.client import CompletionPoster, pooled_client, refused
from judge.backends.openai.transport import BufferedAiohttpTransport, LeanAioHttpClient, lean_client
from tests.support.live_server import free_port, live_server
from tests.support.openai_server import OpenAIServer

QUESTION = "患者：我胃疼三天了，吃了药也不管用，怎么办？"
BODY = orjson.dumps({"model": "loopback-judge", "messages": [{"role": "user", "content": QUESTION}]})


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many requests took each path: ``short`` (one buffered read) and ``httpx`` (httpx2's own send)."""
    taken = {"short": 0, "httpx": 0}
    buffered = BufferedAiohttpTransport.buffered
    streaming = BufferedAiohttpTransport.handle_async_request

    async def count_short(self: BufferedAiohttpTransport, request: httpx2.Request) -> httpx2.Response:
        taken["short"] += 1
        return await buffered(self, request)

    async def count_httpx(self: BufferedAiohttpTransport, request: httpx2.Request) -> httpx2.Response:
        taken["httpx"] += 1
        return await streaming(self, request)

    monkeypatch.setattr(BufferedAiohttpTransport, "buffered", count_short)
    monkeypatch.setattr(BufferedAiohttpTransport, "handle_async_request", count_httpx)
    return taken


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    lean = lean_client(concurrency=4, timeout_s=5)
    yield lean
    await lean.aclose()


async def _echo(request: Request) -> Response:
    body = await request.body()
    return Response(orjson.dumps({"method": request.method, "path": request.url.path, "body": body.decode()}))


async def _headers(request: Request) -> Response:
    return Response(orjson.dumps(dict(request.headers)), media_type="application/json")


async def _moved(_: Request) -> Response:
    return Response(status_code=307, headers={"location": "/v2/chat/completions"})


async def _gzipped(_: Request) -> Response:
    return Response(
        gzip.compress(orjson.dumps({"answer": QUESTION})),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )


async def _chunked(_: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        answer = orjson.dumps({"answer": QUESTION * 50})
        for start in range(0, len(answer), 1000):
            yield answer[start : start + 1000]

    return StreamingResponse(parts(), media_type="application/json")  # Transfer-Encoding: chunked


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    routes = [
        Route("/chunked", _chunked, methods=["POST"]),
        Route("/headers", _headers, methods=["POST"]),
        Route("/v1/chat/completions", _moved, methods=["POST"]),
        Route("/v2/chat/completions", _echo, methods=["POST"]),
        Route("/gzip", _gzipped, methods=["POST"]),
    ]
    with live_server(Starlette(routes=routes)) as url:
        yield url


async def test_an_sdk_chat_completion_takes_the_short_path_with_chinese_intact(
    openai_server: OpenAIServer, paths: dict[str, int]
) -> None:
    sdk = pooled_client(base_url=openai_server.url, api_key="EMPTY", timeout_s=5, concurrency=4)
    try:
        # The SDK's typed method, not only the judge's raw post: both reach the server the same way.
        completion = await sdk.chat.completions.create(
            model="loopback-judge", messages=[{"role": "user", "content": QUESTION}]
        )
        raw = await CompletionPoster(sdk).post(BODY)
    finally:
        await sdk.close()
    assert completion.choices and raw.status_code == 200
    assert orjson.loads(raw.content)["choices"]
    assert [call.request.messages[0]["content"] for call in list(openai_server.requests)[-2:]] == [QUESTION, QUESTION]
    assert openai_server.last_request.headers["authorization"] == "Bearer EMPTY"
    assert paths == {"short": 2, "httpx": 0}
    assert raw.elapsed.total_seconds() > 0


async def test_a_streamed_answer_takes_the_whole_httpx_path(
    client: httpx2.AsyncClient, echo_server: str, paths: dict[str, int]
) -> None:
    async with client.stream("POST", f"{echo_server}/v2/chat/completions", content=QUESTION.encode()) as response:
        body = orjson.loads(await response.aread())
    assert body == {"method": "POST", "path": "/v2/chat/completions", "body": QUESTION}
    assert paths == {"short": 0, "httpx": 1}


async def test_a_redirect_is_followed_with_method_and_body(
    client: httpx2.AsyncClient, echo_server: str, paths: dict[str, int]
) -> None:
    # A gateway that moved (307 keeps the method): the short path sees the redirect, httpx2 follows it.
    response = await client.post(f"{echo_server}/v1/chat/completions", content=QUESTION.encode())
    assert response.status_code == 200
    assert orjson.loads(response.content) == {"method": "POST", "path": "/v2/chat/completions", "body": QUESTION}
    assert paths["short"] == 1 and paths["httpx"] == 2  # the redirect, then its target


async def test_a_compressed_answer_is_decoded(
    client: httpx2.AsyncClient, echo_server: str, paths: dict[str, int]
) -> None:
    response = await client.post(f"{echo_server}/gzip", content=b"{}")
    assert orjson.loads(response.content) == {"answer": QUESTION}
    assert paths == {"short": 1, "httpx": 0}


async def test_a_chunked_answer_is_read_whole(
    client: httpx2.AsyncClient, echo_server: str, paths: dict[str, int]
) -> None:
    response = await client.post(f"{echo_server}/chunked", content=b"{}")
    assert response.headers["transfer-encoding"] == "chunked"
    assert orjson.loads(response.content) == {"answer": QUESTION * 50}
    assert paths == {"short": 1, "httpx": 0}


async def test_mounted_transports_such_as_proxies_are_used(paths: dict[str, int]) -> None:
    # httpx2 reads HTTPS_PROXY and friends into mounts; a request must go where the mount sends it.
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, content=b'{"via": "mount"}')

    limits = httpx2.Limits(max_connections=2, max_keepalive_connections=2)
    proxied = LeanAioHttpClient(limits=limits, timeout=5, mounts={"all://": httpx2.MockTransport(handler)})
    try:
        response = await proxied.post("http://judge.invalid/v1/chat/completions", content=QUESTION.encode())
    finally:
        await proxied.aclose()
    assert orjson.loads(response.content) == {"via": "mount"}
    assert [r.content.decode() for r in seen] == [QUESTION]
    assert paths == {"short": 0, "httpx": 0}


async def test_headers_of_the_client_itself_are_sent(echo_server: str, paths: dict[str, int]) -> None:
    limits = httpx2.Limits(max_connections=2, max_keepalive_connections=2)
    lean = LeanAioHttpClient(limits=limits, timeout=5, headers={"X-Tenant": "医院-a".encode().hex()})
    try:
        response = await lean.post(f"{echo_server}/headers", content=b"x")
    finally:
        await lean.aclose()
    assert response.json()["x-tenant"] == "医院-a".encode().hex()
    assert paths["short"] == 0


async def test_event_hooks_run(echo_server: str, paths: dict[str, int]) -> None:
    hooked: list[str] = []

    async def on_request(request: httpx2.Request) -> None:
        hooked.append(request.url.path)

    limits = httpx2.Limits(max_connections=2, max_keepalive_connections=2)
    hooks: Any = {"request": [on_request]}
    lean = LeanAioHttpClient(limits=limits, timeout=5, event_hooks=hooks)
    try:
        response = await lean.post(f"{echo_server}/v2/chat/completions", content=b"x")
    finally:
        await lean.aclose()
    assert response.status_code == 200 and hooked == ["/v2/chat/completions"]
    assert paths["short"] == 0


async def test_a_stalled_server_is_a_read_timeout(openai_server: OpenAIServer, paths: dict[str, int]) -> None:
    openai_server.stall_rate, openai_server.stall_s = 1.0, 5.0
    sdk = pooled_client(base_url=openai_server.url, api_key="EMPTY", timeout_s=0.3, concurrency=2)
    try:
        with pytest.raises(openai.APITimeoutError):
            await CompletionPoster(sdk).post(BODY)
    finally:
        await sdk.close()
    assert paths["short"] == 1


async def test_a_refused_connection_is_a_connection_error_found_as_refused(paths: dict[str, int]) -> None:
    sdk = pooled_client(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="EMPTY", timeout_s=2, concurrency=2)
    try:
        with pytest.raises(openai.APIConnectionError) as caught:
            await CompletionPoster(sdk).post(b"{}")
    finally:
        await sdk.close()
    assert refused(caught.value)
    assert paths["short"] == 1


async def test_a_closed_client_sends_nothing(client: httpx2.AsyncClient, echo_server: str) -> None:
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.post(f"{echo_server}/v2/chat/completions", content=b"x")
