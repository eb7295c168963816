"""The edge: body-size limit on every route and unstorable bytes in paths or queries, refused before routing.

A pure ASGI middleware (no body buffering of its own): the declared ``Content-Length`` is checked up front,
and the bytes actually received are counted, so a chunked body cannot slip past the limit. Streamed JSONL job
uploads are excepted (they are bounded per line and stored as they arrive). Answers come in the shape of the
route: ``{"detail": …}`` for OpenRLHF's ``/get_reward``, vLLM's error body for ``/classify``, and the
project's ``{"error": …}`` everywhere else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.responses import FastJSONResponse
from judge.classify import error_body
from judge.errors import LimitExceeded
from rubrics.storable import UNSTORABLE_MESSAGE, unstorable_path

# Job uploads stream JSONL of any length into the store line by line (judge/jobs/ingest.py).
_STREAMED = ("/v1/jobs",)
_JSONL = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonl"})


class BodyTooLarge(LimitExceeded):
    """More body bytes than ``RJ_MAX_BODY_BYTES`` (raised from ``receive`` while a route reads its body)."""


def _shaped(path: str, status: int, type_: str, message: str, field: str | None) -> FastJSONResponse:
    payload: dict[str, Any]
    if path == "/get_reward":
        payload = {"detail": message}
    elif path == "/classify":
        payload = error_body(message, status, field)
    else:
        payload = {"error": {"type": type_, "message": message, "field": field}}
    return FastJSONResponse(payload, status_code=status)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Edge:
    def __init__(self, app: ASGIApp, max_body_bytes: int | None = None) -> None:
        self.app = app
        self._max = max_body_bytes

    def _limit(self, scope: Scope) -> int | None:
        if self._max is not None:
            return self._max
        runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
        return runtime.settings.max_body_bytes if runtime is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        refused = self._unstorable(scope)
        if refused is not None:
            await _shaped(path, 422, "ValidationError", f"{refused}: {UNSTORABLE_MESSAGE}", refused)(
                scope, receive, send
            )
            return
        limit = self._limit(scope)
        media = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if limit is None or (path in _STREAMED and media in _JSONL):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            message = f"the body has {int(declared)} bytes; the limit is {limit} (RJ_MAX_BODY_BYTES)"
            await _shaped(path, 413, "BodyTooLarge", message, "body")(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"the body has more than {limit} bytes (RJ_MAX_BODY_BYTES)", field="body")
            return message

        await self.app(scope, counted, send)

    @staticmethod
    def _unstorable(scope: Scope) -> str | None:
        """``path`` or the query parameter holding a NUL or lone surrogate (the store cannot keep either)."""
        if unstorable_path(scope.get("path", "")) is not None:
            return "path"
        raw: bytes = scope.get("query_string", b"")
        if b"%" in raw or b"\x00" in raw:
            # Undecodable bytes become lone surrogates here (surrogateescape), which the check refuses too.
            for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="surrogateescape"):
                if unstorable_path(name) is not None:
                    return "query"
                if unstorable_path(value) is not None:
                    return name
        return None
