"""One way for every command to fail: one line saying what went wrong, one line saying what to do, exit 1 or 2.

``rubric-judge --debug …`` (or ``RJ_DEBUG=1``) prints the traceback instead. The command group class
catches what its commands raise, so commands need no try/except of their own for this.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from judge.extras import missing_extra
from rubrics.errors import RubricJudgeError

_debug = False


def set_debug(value: bool) -> None:
    global _debug
    _debug = value


def debugging() -> bool:
    return _debug or os.environ.get("RJ_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def describe(exc: BaseException) -> tuple[str, str | None, int]:
    """(what went wrong, what to do, exit code) for any exception a command raises."""
    if isinstance(exc, ImportError) and (extra := missing_extra(exc)) is not None:
        return extra.message, None, 2
    if isinstance(exc, RubricJudgeError) and exc.type == "MissingExtra":
        return exc.message, None, 2
    if isinstance(exc, RubricJudgeError):
        where = f" ({exc.field})" if exc.field else ""
        hint = _HINTS.get(exc.type)
        return f"{exc.type}{where}: {exc.message}", hint, 2
    text = f"{exc}".strip().splitlines()[0] if f"{exc}".strip() else type(exc).__name__
    lowered = f"{type(exc).__name__} {exc}".lower()
    if _refused(exc):
        return f"cannot connect: {text}", "is the server running, and is the URL right?", 1
    if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
        return f"timed out: {text}", "the server is reachable but slow; raise the timeout or try again", 1
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return "the database has no schema (never migrated)", "run `rubric-judge migrate`", 1
    if type(exc).__name__ == "ArgumentError" or "could not parse sqlalchemy url" in lowered:
        return f"invalid database URL: {text}", "e.g. RJ_DATABASE_URL=postgresql+asyncpg://user@host/db", 2
    if isinstance(exc, ValueError) and "unsupported database backend" in lowered:
        return text, "RJ_DATABASE_URL must be postgresql+asyncpg://… or sqlite+aiosqlite:///…", 2
    return f"{type(exc).__name__}: {text}", None, 1


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        name = type(current).__name__
        if name in {"ConnectError", "APIConnectionError", "CannotConnectNowError", "ConnectionError"}:
            return "timeout" not in name.lower() and "timed out" not in str(current).lower()
        if isinstance(current, OSError) and "connect call failed" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


_HINTS = {
    "SchemaNotReady": None,  # the message says what to run
    "JudgeNotFound": "`rubric-judge judges list` shows the judges; add yours to a judges file (--judges-file)",
    "RubricNotFound": "`rubric-judge rubrics list` shows the rubrics",
    "JudgeUnavailable": "`rubric-judge judges check NAME` tries the judge once and says what is wrong",
    "JudgeRubricMismatch": "`rubric-judge judges list` shows which rubric kinds each judge scores",
}


def print_error(exc: BaseException) -> int:
    """Print ``exc`` as one unwrapped line plus a hint (and the traceback first with --debug); the exit code."""
    message, hint, code = describe(exc)
    if debugging():
        traceback.print_exception(exc, file=sys.stderr)
    typer.secho(f"error: {message}", fg="red", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    elif not debugging():
        typer.echo("hint: run with --debug for the traceback", err=True)
    return code


def fail(exc: BaseException) -> typer.Exit:
    """For commands that catch a domain error themselves: print it like :func:`report`; raise what it returns."""
    return typer.Exit(code=print_error(exc))


def report(exc: BaseException) -> NoReturn:
    """Print ``exc`` as one line plus a hint (or the traceback with --debug) and exit."""
    raise SystemExit(print_error(exc))


class ReportingGroup(TyperGroup):
    """A command group whose commands fail with :func:`report` instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, SystemExit):
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise SystemExit(130) from None
        except Exception as exc:
            report(exc)
