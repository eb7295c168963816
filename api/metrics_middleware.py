"""Request latency histogram and a ``Server-Timing`` header, as a plain ASGI middleware (cheaper than
BaseHTTPMiddleware)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from judge.metrics import REQUEST_LATENCY


def route_label(scope: Scope) -> str:
    """The route template (``/v1/verdicts/{verdict_id}``), not the raw path: ids would explode the label set."""
    if "route" not in scope:
        return "unmatched"
    path: str = scope["path"]
    for name, value in scope.get("path_params", {}).items():
        path = path.replace(str(value), "{" + name + "}")
    return path


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The server's own time up to the response head (bodies here are rendered before it), for
                # clients and benchmarks that must tell server time from network and client time.
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = [*message.get("headers", []), (b"server-timing", f"app;dur={elapsed_ms:.3f}".encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            REQUEST_LATENCY.labels(route=route_label(scope), method=scope["method"], status=str(status)).observe(
                time.perf_counter() - started
            )
