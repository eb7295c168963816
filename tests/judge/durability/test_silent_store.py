"""A database that accepts connections and never answers: the writer's attempt fails within RJ_DB_TIMEOUT_S
as an outage, so the verdict is held, then spooled at shutdown, instead of hanging or being lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from judge.cache import MemoryCache
from judge.durability.spool import Spool
from judge.store.database import create_engine, make_session_factory
from judge.writer import VerdictWriter
from tests.judge.store.factories import make_sample, make_verdict
from tests.support.silent_server import silent_server


async def test_a_silent_store_holds_then_spools_the_verdict(tmp_path: Path) -> None:
    async with silent_server() as port:
        url = f"postgresql://postgres@127.0.0.1:{port}/静默"
        engine = create_engine(url, timeout_s=0.5)
        spool_dir = tmp_path / "spool"
        writer = VerdictWriter(
            make_session_factory(engine),
            MemoryCache(100, 60),
            spool=Spool(spool_dir, url),
            wait_s=3.0,  # longer than the timeout: the attempt itself must give up, not the wait
            max_backoff_s=0.5,
            flush_timeout_s=0.5,
        )
        sample = make_sample("医生，我昨晚开始胸口发闷，喘不上气，要紧吗？")
        verdict = make_verdict(sample)
        try:
            async with asyncio.timeout(8):
                stored = await writer.write(verdict, sample)
                assert not stored
                assert writer.in_outage, "the timed-out attempt was not taken for an outage"
                assert writer.is_pending(verdict.id)
                await writer.aclose()
        finally:
            await engine.dispose()
    spooled = [line for path in spool_dir.glob("*.jsonl") for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(spooled) == 1 and verdict.id in spooled[0] and "胸口发闷" in spooled[0]
