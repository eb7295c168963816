"""Coalesced store look-ups: concurrent requests for cache misses share one query.

Under RL load every request is a small batch (OpenRLHF sends one rollout per POST) and nearly every sample is
new, so each request missed the cache and asked the store on its own: one session, one round trip and one
freshly built query per request took a third of the API's CPU. Here, while one query runs, the keys asked for
meanwhile wait and go together into the next one (the pattern of the group-commit writer), so the number of
queries follows the database's speed, not the request rate; a lone request waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import Verdict

# Keys per query: far below the drivers' bind-parameter limits (the repository chunks IN lists anyway).
MAX_KEYS = 4096


class StoreLookup:
    """``find(keys)`` -> the newest complete verdict per key, one query for all callers waiting at once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._waiting: list[tuple[list[str], asyncio.Future[dict[str, Verdict]]]] = []
        self._running: asyncio.Task[None] | None = None

    async def find(self, keys: Sequence[str]) -> dict[str, Verdict]:
        """Raises what the query raised, so the caller decides what a failed look-up means."""
        future: asyncio.Future[dict[str, Verdict]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(keys), future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain(), name="store-lookup")
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch: list[tuple[list[str], asyncio.Future[dict[str, Verdict]]]] = []
            count = 0
            while self._waiting and (not batch or count + len(self._waiting[0][0]) <= MAX_KEYS):
                keys, future = self._waiting.pop(0)
                batch.append((keys, future))
                count += len(keys)
            wanted = list(dict.fromkeys(key for keys, _ in batch for key in keys))
            try:
                async with self._sessions() as session:
                    found = await VerdictRepository(session).find_complete(wanted)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for keys, future in batch:
                if not future.done():  # a caller that gave up (cancelled) is skipped
                    future.set_result({key: found[key] for key in keys if key in found})
