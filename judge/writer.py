"""Group commit of verdicts: results that finish together are written in one transaction.

At judge concurrency 64 a whole wave of answers arrives within milliseconds; one commit per
verdict would serialise them on the database (and on SQLite's single writer). The writer drains
whatever is queued into one transaction, then one cache pipeline, and wakes every waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.cache import VerdictCache
from judge.outage import OutageLog
from judge.samples import Sample
from judge.store.repository import VerdictRepository
from judge.verdicts import Verdict

log = logging.getLogger(__name__)

_MAX_BATCH = 512


@dataclass
class _Pending:
    verdict: Verdict
    sample: Sample
    done: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def verdict_bytes(verdict: Verdict) -> bytes:
    return orjson.dumps(verdict.model_dump(mode="json"))


class VerdictWriter:
    """Writes verdicts to the store (durable) and, when complete, to the cache (fast)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession] | None, cache: VerdictCache) -> None:
        self._sessions = sessions
        self._cache = cache
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._log = OutageLog(log, "verdict store (writes)")

    async def write(self, verdict: Verdict, sample: Sample) -> bool:
        """Queue a verdict and wait until its batch is committed; False if the store write failed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="verdict-writer")
        pending = _Pending(verdict, sample)
        self._queue.put_nowait(pending)
        return await asyncio.shield(pending.done)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < _MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stored = await self._store(batch)
            await self._cache_complete(batch)
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_result(stored)
                self._queue.task_done()

    async def _store(self, batch: list[_Pending]) -> bool:
        if self._sessions is None:
            return False
        try:
            async with self._sessions() as session:
                # Complete verdicts are also the ratings of judge:<profile>, read from here by agreement studies
                # (judge/store/judge_ratings.py): nothing more to write.
                await VerdictRepository(session).add_many([(p.verdict, p.sample) for p in batch])
                await session.commit()
            self._log.succeeded()
            return True
        except Exception as exc:
            # The caller still gets its verdict; losing the audit copy is logged, never a 500.
            self._log.failed(f"could not store {len(batch)} verdicts", exc)
            return False

    async def _cache_complete(self, batch: list[_Pending]) -> None:
        items = {p.verdict.cache_key: verdict_bytes(p.verdict) for p in batch if p.verdict.complete}
        if items:
            await self._cache.set_many(items)

    async def aclose(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is not None and not self._task.done():
            await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
