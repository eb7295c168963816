"""Store test fixtures: empty, unmigrated databases for the migration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.databases import scratch_pg_database


@pytest.fixture(params=["postgresql", "sqlite"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of this test's own (not migrated): a migration test takes it to the revision it needs."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/m.db"
        return
    async with scratch_pg_database("rj_test_m_") as url:
        yield url
