"""A private PostgreSQL cluster per module, migrated; tests stop and start it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.private_services import PrivatePostgres, migrated_private_postgres


@pytest.fixture(scope="module")
async def private_pg() -> AsyncIterator[PrivatePostgres]:
    async with migrated_private_postgres() as cluster:
        yield cluster
