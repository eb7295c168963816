"""One error shape for every failure: ``{"error": {"type", "message", "field"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import FastJSONResponse
from judge.extras import missing_extra
from rubrics.errors import RubricJudgeError

log = logging.getLogger(__name__)


def error_response(status: int, type_: str, message: str, field: str | None = None) -> FastJSONResponse:
    return FastJSONResponse({"error": {"type": type_, "message": message, "field": field}}, status_code=status)


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
        return error_response(exc.status_code, exc.type, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> FastJSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _body_validation(_: Request, exc: ValidationError) -> FastJSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        return error_response(exc.status_code, "HTTPError", str(exc.detail))

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
