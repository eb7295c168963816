"""Request ids: the caller's ``X-Request-ID`` (or a fresh one) on every log line of the request and on the answer."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from judge.logs import request_id

HEADER = b"x-request-id"
MAX_LENGTH = 128


class RequestId:
    """A plain ASGI middleware (cheaper than BaseHTTPMiddleware) that sets :data:`judge.logs.request_id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == HEADER), b"")
        rid = given.decode("latin-1")[:MAX_LENGTH] if given and given.isascii() and given.strip() else uuid.uuid4().hex
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (HEADER, rid.encode("latin-1"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
