"""Scratch PostgreSQL databases for tests: created on the shared server, dropped afterwards (even if leaked)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("RJ_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def scratch_pg_database(prefix: str) -> AsyncIterator[str]:
    """An empty database ``<prefix><random>``; yields its SQLAlchemy (asyncpg) URL and drops it at the end."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            # FORCE: a test that leaked a connection must not leave the database behind.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
