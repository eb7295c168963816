"""Group commit under load: verdicts that trickle in join one transaction; an idle writer commits at once."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.cache import MemoryCache
from judge.store.verdicts_repository import VerdictRepository
from judge.writer import VerdictWriter, _Pending
from tests.judge.store.factories import make_sample, make_verdict


class _CountingWriter(VerdictWriter):
    """The real writer, recording the size of each committed batch."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[int] = []

    async def _commit(self, batch: list[_Pending]) -> None:
        self.batches.append(len(batch))
        await super()._commit(batch)


async def test_verdicts_trickling_in_under_load_share_commits(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    writer = _CountingWriter(db_sessions, MemoryCache(1000, 60), linger_s=0.02)
    pairs = [(make_verdict(s), s) for s in (make_sample(f"医生，我第{i}次头晕，站起来眼前发黑。") for i in range(60))]

    async def answer(i: int) -> bool:
        await asyncio.sleep(i * 0.001)  # answers of a judge wave arrive a millisecond or so apart
        verdict, sample = pairs[i]
        return await writer.write(verdict, sample)

    try:
        stored = await asyncio.gather(*(answer(i) for i in range(len(pairs))))
    finally:
        await writer.aclose()
    assert all(stored)
    assert sum(writer.batches) == len(pairs)
    # Without the linger each commit takes the few answers that came during the previous one.
    assert len(writer.batches) <= len(pairs) // 4, writer.batches
    async with db_sessions() as session:
        repo = VerdictRepository(session)
        assert all([await repo.get(v.id) is not None for v, _ in pairs])


async def test_a_lone_verdict_is_committed_without_waiting(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    writer = _CountingWriter(db_sessions, MemoryCache(1000, 60), linger_s=2.0)
    sample = make_sample("医生，孩子发烧三十九度，要不要马上去医院？")
    try:
        started = time.perf_counter()
        assert await writer.write(make_verdict(sample), sample)
        elapsed = time.perf_counter() - started
    finally:
        await writer.aclose()
    assert writer.batches == [1]
    assert elapsed < 1.0  # far below the 2 s linger: an idle writer does not linger
