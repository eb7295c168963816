"""Statement helpers every repository shares: batch sizes, chunking, and the dialect's ON CONFLICT insert."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from judge.db.base import Base

# Rows per statement: keeps bound parameters far below SQLite's and asyncpg's 32k limit.
IN_CHUNK = 500
INSERT_CHUNK = 1000

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def dialect_insert(session: AsyncSession, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """A dialect INSERT that supports ON CONFLICT, for the session's backend.

    On the model's table, not the ORM entity: rows are plain dicts either way, and a table insert takes Core's
    executemany path instead of the ORM's bulk-persistence machinery, which cost about as much CPU per verdict
    row as building the row itself (bench/README.md, issue 13).
    """
    dialect = session.get_bind().dialect.name
    table = cast(Table, model.__table__)  # declarative models are mapped to Tables
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for dialect {dialect!r}")
