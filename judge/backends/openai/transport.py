"""The HTTP client under the ``openai`` SDK (its ``http_client`` hook), with a short path for plain judge calls.

The SDK builds every request through its ``http_client``: ``build_request`` then ``send``. With httpx2's own
``AsyncClient`` and the SDK's aiohttp transport, that costs more CPU than the rest of a judged sample together
(bench/README.md, issue 13): the URL string is parsed again, the SDK's finished headers are merged with the
client's and normalised twice more, ``send`` walks the auth, redirect, event-hook and cookie machinery, and the
answer is streamed through three wrappers in 16 KB chunks. :class:`LeanAioHttpClient` keeps all of that for any
request that could need it, and takes a short path for the one the judges make thousands of times a second: an
absolute URL, a body of bytes, no streaming, no auth flow, no proxy. The SDK still builds the request (auth,
headers, timeouts), maps errors and applies its own semantics; the same aiohttp session carries both paths.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import aiohttp
import httpx2
from httpx2._client import USE_CLIENT_DEFAULT, UseClientDefault
from openai._vendor.httpx_aiohttp.transport import AiohttpTransport, map_aiohttp_exceptions

# URLs and timeouts a client has seen, parsed once: one judge posts to one URL with one or two timeouts.
_MAX_CACHED = 64


class BufferedAiohttpTransport(AiohttpTransport):
    """The SDK's aiohttp transport, plus :meth:`buffered`: a whole answer read in one step, without streaming."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _session(self) -> aiohttp.ClientSession:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client

    def _timeout(self, request: httpx2.Request) -> aiohttp.ClientTimeout:
        # The mapping of the transport's streaming path: connect and read per socket, the pool wait overall.
        given = request.extensions.get("timeout", {})
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= _MAX_CACHED:
                self._timeouts.clear()
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
        return timeout

    async def buffered(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` (its body already bytes) and read the whole answer; errors map as in streaming."""
        started = time.perf_counter()
        with map_aiohttp_exceptions():
            async with self._session().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                auto_decompress=False,  # httpx2 decodes by Content-Encoding, as on the streaming path
                compress=False,
                timeout=self._timeout(request),
            ) as answer:
                body = await answer.read()
        response = httpx2.Response(
            answer.status,
            headers=answer.raw_headers,
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode()},
        )
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
        return response


class LeanAioHttpClient(httpx2.AsyncClient):
    """``openai.DefaultAioHttpClient``'s transport, with a short path for plain non-streaming requests.

    The short path applies when a request needs nothing the client adds: the SDK passes an absolute URL, its
    finished headers and a body of bytes, and the client has no headers of its own, default parameters, cookies,
    event hooks or proxy mounts (``HTTPS_PROXY`` and friends are read into mounts). Anything else (a relative URL, a
    streamed answer, an auth flow, a redirect to follow) goes the whole httpx2 way.
    """

    def __init__(self, *, limits: httpx2.Limits, timeout: float, **kwargs: Any) -> None:
        transport = BufferedAiohttpTransport(limits=limits)
        super().__init__(transport=transport, limits=limits, timeout=timeout, follow_redirects=True, **kwargs)
        self._buffered = transport
        # Headers given for the client itself would be merged into every request by httpx2's path: keep to it.
        self._own_headers = bool(kwargs.get("headers"))
        self._urls: dict[str, httpx2.URL] = {}
        self._timeout_dicts: dict[object, dict[str, float | None]] = {}

    def _plain(self) -> bool:
        hooks = self.event_hooks
        return not (
            self._own_headers or self._mounts or self.cookies or self.params or hooks["request"] or hooks["response"]
        )

    def build_request(  # type: ignore[override]  # the same parameters, spelled out for the short path
        self,
        method: str,
        url: httpx2.URL | str,
        *,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        params: Any = None,
        headers: Any = None,
        cookies: Any = None,
        timeout: Any = USE_CLIENT_DEFAULT,
        extensions: dict[str, Any] | None = None,
    ) -> httpx2.Request:
        if (
            isinstance(url, str)
            and isinstance(content, bytes)
            and data is None
            and not files
            and json is None
            and not params
            and not cookies
            and extensions is None
            and self._plain()
        ):
            parsed = self._url(url)
            if parsed is not None:
                timeouts = {"timeout": self._timeout_dict(timeout)}
                return httpx2.Request(method, parsed, content=content, headers=headers, extensions=timeouts)
        return super().build_request(
            method,
            url,
            content=content,
            data=data,
            files=files,
            json=json,
            params=params,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            extensions=extensions,
        )

    def _url(self, url: str) -> httpx2.URL | None:
        """``url`` parsed (once per distinct string); None when relative (it needs the client's base URL)."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpx2.URL(url)
            if not parsed.is_absolute_url:
                return None
            if len(self._urls) >= _MAX_CACHED:
                self._urls.clear()
            self._urls[url] = parsed
        return parsed

    def _timeout_dict(self, timeout: Any) -> dict[str, float | None]:
        key = timeout if not isinstance(timeout, httpx2.Timeout) else tuple(timeout.as_dict().items())
        found = self._timeout_dicts.get(key)
        if found is None:
            chosen = self.timeout if isinstance(timeout, UseClientDefault) else httpx2.Timeout(timeout)
            if len(self._timeout_dicts) >= _MAX_CACHED:
                self._timeout_dicts.clear()
            found = self._timeout_dicts[key] = chosen.as_dict()
        return dict(found)  # a request may change its own extensions

    async def send(
        self,
        request: httpx2.Request,
        *,
        stream: bool = False,
        auth: Any = USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> httpx2.Response:
        if stream or not isinstance(auth, UseClientDefault) or self.auth is not None or not self._plain():
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        response = await self._buffered.buffered(request)
        follow = self.follow_redirects if isinstance(follow_redirects, UseClientDefault) else follow_redirects
        if follow and response.has_redirect_location:
            # Rare (a gateway moved): the whole httpx2 path follows it, the body (bytes) sent again.
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        return response


def lean_client(*, concurrency: int, timeout_s: float) -> httpx2.AsyncClient:
    """The ``http_client`` for an ``AsyncOpenAI`` whose pool holds ``concurrency`` connections."""
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return LeanAioHttpClient(limits=limits, timeout=timeout_s)
