"""Which store failures are an outage (retry later, answer 503) and which are about the row itself."""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc

__all__ = ["is_store_outage", "is_unstorable_text"]


def is_store_outage(exc: BaseException) -> bool:
    """True when the store could not be reached or dropped the connection: the same write may succeed later.

    A DataError or IntegrityError is about the rows and would fail again; everything that says "connection"
    (refused, reset, timed out, server shutting down, SQLite's lock) is an outage.
    """
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError | sa_exc.ProgrammingError):
            return False
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        return _names_connection(exc.orig)
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, OSError | ConnectionError | asyncio.TimeoutError | TimeoutError):
        return True
    return _names_connection(exc)


def _names_connection(exc: BaseException | None) -> bool:
    """asyncpg's own connection errors (without importing asyncpg, which SQLite users need not install)."""
    while exc is not None:
        name = type(exc).__name__
        if "Connection" in name or name in {"CannotConnectNowError", "AdminShutdownError", "CrashShutdownError"}:
            return True
        if isinstance(exc, OSError | ConnectionError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# PostgreSQL's words for NUL in a text parameter or in JSONB (asyncpg passes them through).
_UNSTORABLE_HINTS = ("0x00", "\\u0000", "unsupported unicode escape", "invalid byte sequence")


def is_unstorable_text(exc: BaseException) -> bool:
    """True when the database refused a value for holding NUL (or another byte it cannot store)."""
    if not isinstance(exc, sa_exc.DataError | sa_exc.DBAPIError):
        return False
    text = str(exc).lower()
    return any(hint in text for hint in _UNSTORABLE_HINTS)
