"""Coalesced store look-ups: concurrent cache misses share one query, and a failure reaches every caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from judge.lookup import StoreLookup
from judge.store.verdicts_repository import VerdictRepository
from tests.judge.store.factories import cache_key_for, make_sample, make_verdict


async def test_concurrent_lookups_share_one_query(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    samples = [make_sample(f"医生，我第{i}次胸口疼，怎么办？") for i in range(6)]
    verdicts = [make_verdict(s, cache_key=cache_key_for(s)) for s in samples]
    async with db_sessions() as session:
        await VerdictRepository(session).add_many(list(zip(verdicts, samples, strict=True)))
        await session.commit()

    selects: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "verdicts" in statement:
            selects.append(statement)

    event.listen(db_engine.sync_engine, "before_cursor_execute", count)
    try:
        lookup = StoreLookup(db_sessions)
        asked = [[v.cache_key, f"missing-{i}"] for i, v in enumerate(verdicts)]
        found = await asyncio.gather(*(lookup.find(keys) for keys in asked))
    finally:
        event.remove(db_engine.sync_engine, "before_cursor_execute", count)

    # The first caller's query runs alone; everyone who asked meanwhile goes into the second.
    assert len(selects) <= 2
    for keys, result, verdict in zip(asked, found, verdicts, strict=True):
        assert list(result) == [keys[0]] and result[keys[0]].id == verdict.id


async def test_a_failed_query_fails_every_waiting_caller(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    class Broken:
        def __call__(self) -> Any:
            raise ConnectionError("数据库不可用")

    lookup = StoreLookup(Broken())  # type: ignore[arg-type]
    results = await asyncio.gather(*(lookup.find([f"k{i}"]) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    # The next look-up runs again (nothing is stuck).
    working = StoreLookup(sqlite_sessions)
    assert await working.find(["nothing"]) == {}


async def test_a_cancelled_caller_does_not_disturb_the_others(
    sqlite_sessions: async_sessionmaker[AsyncSession],
) -> None:
    lookup = StoreLookup(sqlite_sessions)
    first = asyncio.create_task(lookup.find(["a"]))
    second = asyncio.create_task(lookup.find(["b"]))
    await asyncio.sleep(0)
    second.cancel()
    assert await first == {}
    with pytest.raises(asyncio.CancelledError):
        await second
