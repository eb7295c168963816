"""Durable verdicts: a store outage, a full buffer, a shutdown while down and an unstorable row lose nothing.

The outage tests stop a PRIVATE PostgreSQL cluster (tests/support/private_services.py) mid-load; the shared
one is never touched. Every test is bounded: waits have timeouts, outages last a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from judge.cache import MemoryCache
from judge.durability.spool import Spool
from judge.samples import Sample
from judge.store.database import create_engine, make_session_factory
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import Verdict
from judge.writer import VerdictWriter
from tests.judge.store.factories import make_sample, make_verdict
from tests.support.private_services import PrivatePostgres

Sessions = async_sessionmaker[AsyncSession]


def _pairs(n: int, tag: str = "") -> list[tuple[Verdict, Sample]]:
    out = []
    for i in range(n):
        sample = make_sample(f"医生，我{tag}第{i}次胸口发闷，喘不上气，要紧吗？")
        out.append((make_verdict(sample), sample))
    return out


async def _stored_ids(sessions: Sessions, ids: list[str]) -> set[str]:
    found: set[str] = set()
    async with sessions() as session:
        repo = VerdictRepository(session)
        for verdict_id in ids:
            if await repo.get(verdict_id) is not None:
                found.add(verdict_id)
    return found


@pytest.fixture
async def private_engine(private_pg: PrivatePostgres) -> AsyncIterator[AsyncEngine]:
    private_pg.start()  # a no-op when it is up already
    engine = create_engine(private_pg.url)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE verdicts, samples, ratings CASCADE"))
    yield engine
    await engine.dispose()


def _writer(sessions: Sessions, spool_dir: Path, url: str, **kwargs: float) -> VerdictWriter:
    return VerdictWriter(
        sessions,
        MemoryCache(1000, 60),
        spool=Spool(spool_dir, url),
        wait_s=kwargs.get("wait_s", 2.0),
        buffer_max=int(kwargs.get("buffer_max", 10_000)),
        max_backoff_s=0.5,
        flush_timeout_s=kwargs.get("flush_timeout_s", 5.0),
    )


async def test_a_store_outage_mid_load_loses_no_answered_verdict(
    private_pg: PrivatePostgres, private_engine: AsyncEngine, tmp_path: Path
) -> None:
    sessions = make_session_factory(private_engine)
    writer = _writer(sessions, tmp_path / "spool", private_pg.url)
    answered: list[str] = []
    results: list[bool] = []

    async def client(worker: int) -> None:
        for verdict, sample in _pairs(30, tag=f"客户{worker}"):
            results.append(await writer.write(verdict, sample))
            answered.append(verdict.id)
            await asyncio.sleep(0.02)

    async def outage() -> None:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(private_pg.stop, "immediate")
        await asyncio.sleep(2.0)
        await asyncio.to_thread(private_pg.start)

    try:
        await asyncio.wait_for(asyncio.gather(outage(), *(client(w) for w in range(8))), timeout=60)
        assert not all(results), "the outage should have left some verdicts pending"
        assert await writer.settled(timeout=30)
        assert writer.pending == 0
        assert await _stored_ids(sessions, answered) == set(answered)
        assert len(answered) == 240
    finally:
        await writer.aclose()


async def test_a_full_buffer_spills_and_a_shutdown_while_down_spools_the_rest(
    private_pg: PrivatePostgres, private_engine: AsyncEngine, tmp_path: Path
) -> None:
    sessions = make_session_factory(private_engine)
    spool_dir = tmp_path / "spool"
    writer = _writer(sessions, spool_dir, private_pg.url, buffer_max=5, flush_timeout_s=0.3)
    pairs = _pairs(20, tag="溢出")
    spooled_before = REGISTRY.get_sample_value("rj_verdicts_spooled_total") or 0.0
    await asyncio.to_thread(private_pg.stop, "immediate")
    try:
        stored = [await writer.write(v, s) for v, s in pairs]
        assert not any(stored)
        assert writer.spilled == 15
        assert REGISTRY.get_sample_value("rj_verdicts_spooled_total") == spooled_before + 15
        assert REGISTRY.get_sample_value("rj_verdicts_pending_writes") == 5
        assert writer.pending == 5
        assert all(writer.is_pending(v.id) for v, _ in pairs[-5:])
        await writer.aclose()  # SIGTERM path: the store is still down, so the buffer goes to the spool
        assert sum(1 for _ in spool_dir.glob("verdicts-*.jsonl")) >= 1
    finally:
        await asyncio.to_thread(private_pg.start)
    # A new process on the same database replays the spool at start-up.
    restarted = _writer(sessions, spool_dir, private_pg.url)
    restarted.start()
    try:
        assert await restarted.settled(timeout=30)
        ids = [v.id for v, _ in pairs]
        assert await _stored_ids(sessions, ids) == set(ids)
        assert not list(spool_dir.glob("verdicts-*.jsonl"))
        # Replaying again (a crash between commit and unlink) is harmless: ids are inserted ON CONFLICT DO NOTHING.
        assert restarted.replayed == 20
    finally:
        await restarted.aclose()


async def test_a_spool_of_another_database_is_left_alone(tmp_path: Path, pg_sessions: Sessions, pg_url: str) -> None:
    other = Spool(tmp_path, "postgresql+asyncpg://elsewhere/db")
    verdict, sample = _pairs(1)[0]
    from judge.durability.spool import encode

    other.append([encode(verdict, sample)])
    other.close_own()
    writer = _writer(pg_sessions, tmp_path, pg_url)
    writer.start()
    assert await writer.settled(timeout=10)
    assert await _stored_ids(pg_sessions, [verdict.id]) == set()
    assert len(list(tmp_path.glob("verdicts-*.jsonl"))) == 1
    await writer.aclose()


async def test_one_unstorable_row_costs_no_other_row(pg_sessions: Sessions, pg_url: str, tmp_path: Path) -> None:
    writer = _writer(pg_sessions, tmp_path / "spool", pg_url)
    pairs = _pairs(19, tag="同批")
    bad_sample = make_sample("坏字节")
    # Past the edge checks on purpose: the store refuses NUL in JSONB, which used to drop the whole batch.
    bad = make_verdict(bad_sample, rationale="含有\x00的理由")
    try:
        results = await asyncio.gather(*(writer.write(v, s) for v, s in pairs), writer.write(bad, bad_sample))
        assert results[:-1] == [True] * 19
        assert results[-1] is False
        ids = [v.id for v, _ in pairs]
        assert await _stored_ids(pg_sessions, ids) == set(ids)
        assert writer.rejected == 1
        rejected = list((tmp_path / "spool").glob("rejected-*.jsonl"))
        assert len(rejected) == 1
        assert bad.id in rejected[0].read_text(encoding="utf-8")
    finally:
        with contextlib.suppress(Exception):
            await writer.aclose()
