"""Keys sent in query strings (``?api_key=`` for OpenRLHF and verl clients) never reach a log line."""

from __future__ import annotations

import logging
import re
from typing import Any

_SECRET_PARAM = re.compile(r"(?i)([?&](?:api_key|apikey|key|token|access_token)=)[^&\s\"']*")
# uvicorn's access and error logs carry request paths with their query; httpx logs the URLs it calls.
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "httpx", "")


def redact(text: str) -> str:
    return _SECRET_PARAM.sub(r"\1***", text)


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) and "=" in value else value


class RedactQueryKeys(logging.Filter):
    """Rewrites a record's message and arguments in place (arguments keep their types: uvicorn unpacks them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_arg(value) for key, value in record.args.items()}
        return True


_FILTER = RedactQueryKeys()


def install() -> None:
    """Attach the filter to the loggers and to every handler of the root logger (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
