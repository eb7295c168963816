"""Shared fixtures: a migrated PostgreSQL database per test run, migrated SQLite files, Redis key prefixes.

PostgreSQL (127.0.0.1:5432, user postgres, trust auth) and Redis (127.0.0.1:6379) are always up here and in CI;
``RJ_TEST_PG_ADMIN_URL`` and ``RJ_TEST_REDIS_URL`` point the tests elsewhere.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from judge.store.database import create_engine, make_session_factory
from judge.store.migrate import upgrade
from tests.support.databases import scratch_pg_database
from tests.support.openai_server import OpenAIServer

REDIS_URL = os.environ.get("RJ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _tables(engine: AsyncEngine) -> list[str]:
    """Every table the migrations made, read from the database (so tables added later are cleaned too)."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables "
                    "WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                )
            )
        else:
            rows = await conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' AND name <> 'alembic_version'"
                )
            )
        return sorted(row[0] for row in rows)


@pytest.fixture(scope="session")
async def pg_url() -> AsyncIterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database ``rj_test_<random>``, migrated to head once per run."""
    async with scratch_pg_database("rj_test_") as url:
        await upgrade(url)
        yield url


@pytest.fixture(scope="session")
async def _pg_tables(pg_url: str) -> list[str]:
    engine = create_engine(pg_url)
    try:
        return await _tables(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def pg_engine(pg_url: str, _pg_tables: list[str]) -> AsyncIterator[AsyncEngine]:
    """An engine on the run's PostgreSQL database, every table emptied before the test."""
    engine = create_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(_pg_tables)} RESTART IDENTITY CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture
def pg_sessions(pg_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory on the emptied PostgreSQL database."""
    return make_session_factory(pg_engine)


@pytest.fixture(scope="session")
async def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Migrate once; each test gets a copy of the file (much cheaper than running Alembic per test).
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """SQLAlchemy URL of a migrated SQLite file of this test's own."""
    path = tmp_path / "store" / "rj.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sqlite_sessions(sqlite_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(sqlite_engine)


@pytest.fixture(params=["postgresql", "sqlite"])
def db_engine(request: pytest.FixtureRequest) -> AsyncEngine:
    """An empty, migrated database on each backend in turn: use it to run a test on PostgreSQL and SQLite."""
    engine: AsyncEngine = request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")
    return engine


@pytest.fixture
def db_sessions(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory on :func:`db_engine` (PostgreSQL and SQLite in turn)."""
    return make_session_factory(db_engine)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared test Redis; isolate keys with :func:`redis_prefix`."""
    return REDIS_URL


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own (``rjtest:<random>:``); its keys are deleted afterwards."""
    prefix = f"rjtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A raw client on the test Redis (bytes in, bytes out)."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def openai_server_session() -> Iterator[OpenAIServer]:
    """One loopback OpenAI-protocol server for the whole run (starting uvicorn per test would be slow)."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_server(openai_server_session: OpenAIServer) -> OpenAIServer:
    """The loopback server with an empty script, default verdicts and zeroed counters."""
    openai_server_session.reset()
    return openai_server_session
