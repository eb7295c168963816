"""Engines: driver pinning, SQLite pragmas and directory creation, ping."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from judge.store.database import SQLITE_BUSY_TIMEOUT_MS, create_engine, normalise_url, ping


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///./a.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///./a.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(url: str, driver: str) -> None:
    assert normalise_url(url).drivername == driver


def test_other_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database backend"):
        normalise_url("mysql://u@h/db")


async def test_sqlite_engine_creates_the_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "rj.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == SQLITE_BUSY_TIMEOUT_MS
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
        assert await ping(engine)
    finally:
        await engine.dispose()


async def test_ping_answers_for_postgres(pg_engine: AsyncEngine) -> None:
    assert await ping(pg_engine)


async def test_ping_is_false_for_an_unreachable_database() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    engine = create_engine("postgresql://postgres@127.0.0.1:1/none")
    try:
        assert not await ping(engine, timeout_s=2)
    finally:
        await engine.dispose()
