"""Engines: driver pinning, SQLite pragmas and directory creation, ping."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from judge.durability.outage import is_store_outage
from judge.settings import Settings
from judge.store.database import SQLITE_BUSY_TIMEOUT_MS, create_engine, normalise_url, ping
from tests.support.silent_server import silent_server


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


async def test_a_silent_postgres_fails_the_first_connect_within_the_timeout_as_an_outage() -> None:
    # Accepts TCP, never answers the start-up message: without a timeout the connect waits for hours.
    async with silent_server() as port:
        engine = create_engine(f"postgresql://postgres@127.0.0.1:{port}/静默", timeout_s=0.5)
        started = time.monotonic()
        try:
            with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is what is_store_outage judges
                async with asyncio.timeout(8), engine.connect() as conn:
                    await conn.execute(text("SELECT '连接'"))
        finally:
            await engine.dispose()
    assert time.monotonic() - started < 5, "the connect timeout did not bound the wait (asyncio.timeout did)"
    assert is_store_outage(caught.value), repr(caught.value)


async def test_sqlite_ignores_the_database_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / '库.db'}", timeout_s=0.5)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT '中文'"))).scalar_one() == "中文"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        await engine.dispose()


def test_the_database_timeout_is_one_generous_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).db_timeout_s == 30.0  # type: ignore[call-arg]
    monkeypatch.setenv("RJ_DB_TIMEOUT_S", "2.5")
    assert Settings(_env_file=None).db_timeout_s == 2.5  # type: ignore[call-arg]
