"""A private PostgreSQL cluster per module, migrated; tests stop and start it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from judge.store.migrate import upgrade
from tests.support.private_services import PrivatePostgres


@pytest.fixture(scope="module")
async def private_pg() -> AsyncIterator[PrivatePostgres]:
    # Not under pytest's tmp folder: that one is private to root, and the cluster runs as user postgres.
    directory = Path(tempfile.mkdtemp(prefix="rj-private-pg-"))
    cluster = PrivatePostgres(directory)
    cluster.start()
    try:
        await upgrade(cluster.url)
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
