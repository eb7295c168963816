"""Logging set-up for the server, workers and CLI: text or JSON lines (``RJ_LOG_FORMAT``), with request ids.

A request id (the caller's ``X-Request-ID``, or a fresh one) lives in a context variable for the duration of a
request; every log line written meanwhile carries it. Per-call INFO lines of HTTP client libraries (one per judge
call) are turned down to WARNING: at RL batch rates they drowned everything else.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any

from judge.settings import Settings

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("rj_request_id", default=None)

# Libraries that log one INFO line per HTTP call (the OpenAI SDK's httpx transport, among others).
QUIET_LOGGERS = ("httpx", "httpcore", "openai", "aiohttp.access", "arq.worker", "arq.jobs", "alembic.runtime.plugins")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_id_suffix)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (and a ``[id]`` suffix for the text format) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid
        record.request_id_suffix = f" [{rid}]" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            body["request_id"] = rid
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: Settings) -> None:
    """The root logger at ``RJ_LOG_LEVEL`` in ``RJ_LOG_FORMAT``; chatty client libraries at WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's loggers through the root handler (same format, request ids on access lines)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"level": settings.log_level, "propagate": True, "handlers": []},
            "uvicorn.error": {"level": settings.log_level, "propagate": True, "handlers": []},
            "uvicorn.access": {"level": settings.log_level, "propagate": True, "handlers": []},
        },
    }
