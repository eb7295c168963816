"""One error shape for every failure: ``{"error": {"type", "message", "field"}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import FastJSONResponse
from judge.durability.outage import is_store_outage, is_unstorable_text
from judge.errors import StoreUnavailable
from judge.extras import missing_extra
from rubrics.errors import RubricJudgeError
from rubrics.storable import UNSTORABLE_MESSAGE

log = logging.getLogger(__name__)


def error_response(
    status: int, type_: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> FastJSONResponse:
    return FastJSONResponse(
        {"error": {"type": type_, "message": message, "field": field}}, status_code=status, headers=headers
    )


def retry_after(exc: BaseException) -> dict[str, str] | None:
    """``Retry-After`` for an error that says when to come back (a store outage)."""
    seconds = getattr(exc, "retry_after_s", None)
    return {"Retry-After": str(seconds)} if seconds is not None else None


def store_unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the database is unreachable ({type(exc).__name__}); retry shortly", field=None)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "samples", 3, "response")`` -> ``samples[3].response``."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_response(errors: list[Any]) -> FastJSONResponse:
    first = errors[0] if errors else {}
    loc = first.get("loc", ())
    if first.get("type") == "json_invalid":
        return error_response(400, "MalformedJSON", f"request body is not valid JSON: {first.get('msg')}")
    field = field_path(loc) or None
    message = "; ".join(f"{field_path(e.get('loc', ())) or 'body'}: {e.get('msg')}" for e in errors[:5])
    return error_response(422, "ValidationError", message, field)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RubricJudgeError)
    async def _domain(_: Request, exc: RubricJudgeError) -> FastJSONResponse:
        return error_response(exc.status_code, exc.type, exc.message, exc.field, retry_after(exc))

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> FastJSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _body_validation(_: Request, exc: ValidationError) -> FastJSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        # Headers kept: a 405 carries the methods the route allows in ``Allow``.
        return error_response(exc.status_code, "HTTPError", str(exc.detail), headers=exc.headers)

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(OSError)
    async def _store(request: Request, exc: Exception) -> FastJSONResponse:
        # While the database is down its routes answer 503 with Retry-After, not 500 (the client retries).
        if is_store_outage(exc):
            outage = store_unavailable(exc)
            return error_response(503, outage.type, outage.message, None, retry_after(outage))
        if is_unstorable_text(exc):
            # A safety net behind the field checks: text the database cannot take is the client's, not a 500.
            return error_response(422, "ValidationError", f"a text value {UNSTORABLE_MESSAGE}")
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "InternalError", "internal error; see the server log")

    @app.exception_handler(ImportError)
    async def _missing_extra(request: Request, exc: ImportError) -> FastJSONResponse:
        # A route whose optional extra is not installed (e.g. /v1/agreement without `stats`): 501 naming it.
        extra = missing_extra(exc)
        if extra is None:
            return await _unexpected(request, exc)
        return error_response(501, extra.type, extra.message, None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> FastJSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "InternalError", "internal error; see the server log")
