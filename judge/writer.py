"""Group commit of verdicts: results that finish together are written in one transaction.

At judge concurrency 64 a whole wave of answers arrives within milliseconds; one commit per
verdict would serialise them on the database (and on SQLite's single writer). The writer drains
whatever is queued into one transaction, then one cache pipeline, and wakes every waiter.

Nothing answered is dropped (docs/reliability.md):

- a batch that fails because the store is unreachable is held in a bounded buffer and retried with
  jittered exponential backoff (tenacity); while held, the writer is "in an outage" and later verdicts join
  the buffer without a doomed attempt each; what does not fit spills to the local spool (fsynced), which
  is replayed once the store answers again, and at start-up;
- a batch that fails because of its rows (a DataError, an IntegrityError) is retried row by row, so one
  unstorable row never costs the others; a row refused on its own goes to a ``rejected`` spool file;
- closing (SIGTERM) with the store still down writes the buffer to the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_never, wait_random_exponential

from judge import metrics
from judge.cache import VerdictCache
from judge.durability.outage import is_store_outage
from judge.durability.spool import Spool, decode, encode
from judge.outage import OutageLog
from judge.samples import Sample
from judge.store.verdicts_repository import VerdictRepository
from judge.verdict_json import axes_json, verdict_json
from judge.verdicts import Verdict

log = logging.getLogger(__name__)

_MAX_BATCH = 512
# A linger ends early after this long without a new verdict.
_QUIET_S = 0.005


@dataclass
class _Pending:
    verdict: Verdict
    sample: Sample
    done: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    _axes: bytes | None = field(default=None, init=False, repr=False)

    @property
    def axes(self) -> bytes:
        """The verdict's axes as JSON, serialised once for its row and its cached form (and kept for retries)."""
        if self._axes is None:
            self._axes = axes_json(self.verdict)
        return self._axes

    def settle(self, stored: bool) -> None:
        if not self.done.done():
            self.done.set_result(stored)


class _RowsRefused(Exception):
    """Some rows of a batch were refused by the store on their own (not an outage)."""


class VerdictWriter:
    """Writes verdicts to the store (durable) and, when complete, to the cache (fast)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession] | None,
        cache: VerdictCache,
        *,
        spool: Spool | None = None,
        buffer_max: int = 10_000,
        wait_s: float = 5.0,
        max_backoff_s: float = 5.0,
        flush_timeout_s: float = 5.0,
        linger_s: float = 0.0,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._spool = spool
        self._buffer_max = buffer_max
        self._wait_s = wait_s
        self._max_backoff_s = max_backoff_s
        self._flush_timeout_s = flush_timeout_s
        self._linger_s = linger_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._retry_task: asyncio.Task[None] | None = None
        # Verdicts answered but not committed yet, oldest first; bounded (the rest spills to the spool).
        self._held: deque[_Pending] = deque()
        self._held_ids: set[str] = set()
        self._batch: list[_Pending] = []
        self._outage = False
        self._log = OutageLog(log, "verdict store (writes)")
        self.spilled = 0
        self.rejected = 0
        self.replayed = 0

    # --- what callers see ---------------------------------------------------------------------------------

    async def write(self, verdict: Verdict, sample: Sample) -> bool:
        """Queue a verdict; True once committed, False when it is held for a retry (or was refused).

        Waits at most ``wait_s`` for the commit. A verdict not stored yet is never dropped: it is retried
        until the store takes it (``is_pending`` says so meanwhile).
        """
        pending = _Pending(verdict, sample)
        if self._sessions is None:
            # No store (a cache-only scorer): the cache still gets complete verdicts.
            await self._cache_complete([pending])
            return False
        if self._outage:
            # The store is known to be down: join the buffer now, without an attempt that would fail too.
            self._hold([pending])
            await self._cache_complete([pending])
            return False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="verdict-writer")
        self._queue.put_nowait(pending)
        try:
            return await asyncio.wait_for(asyncio.shield(pending.done), self._wait_s)
        except TimeoutError:
            return False

    def is_pending(self, verdict_id: str) -> bool:
        """True while an answered verdict waits for the store."""
        return verdict_id in self._held_ids

    @property
    def pending(self) -> int:
        return len(self._held)

    @property
    def in_outage(self) -> bool:
        return self._outage

    def start(self) -> None:
        """Replay spool files of this database left by earlier runs (in the background, retried)."""
        if self._spool is not None and self._sessions is not None and self._spool.has_files():
            self._ensure_retrying()

    async def settled(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued, held or left to replay; False if the timeout passed first."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while self._queue.qsize() or self._held or self._batch or self._retrying():
            if end is not None and loop.time() >= end:
                return False
            await asyncio.sleep(0.05)
        return True

    # --- the group-commit loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        busy = False
        while True:
            first = await self._queue.get()
            if self._linger_s > 0 and (busy or not self._queue.empty()):
                await self._linger()
            batch = [first]
            while len(batch) < _MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            busy = len(batch) > 1 or not self._queue.empty()
            self._batch = batch
            try:
                if self._outage:
                    self._hold(batch)
                else:
                    await self._store_or_hold(batch)
                await self._cache_complete(batch)
            finally:
                self._batch = []
                for _ in batch:
                    self._queue.task_done()

    async def _linger(self) -> None:
        """Under load, let the answers of this moment join one transaction (see ``Settings.write_linger_ms``).

        Waits while verdicts keep arriving, up to the linger: a burst (a wave of judge answers parsed one after
        the other) is committed as soon as it ends, a steady trickle once the linger is up.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + self._linger_s
        seen = self._queue.qsize()
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(_QUIET_S, left))
            if self._queue.qsize() == seen:
                return  # nothing came in for a moment: the burst is over
            seen = self._queue.qsize()

    async def _store_or_hold(self, batch: list[_Pending]) -> None:
        try:
            await self._store(batch)
        except _RowsRefused:
            pass
        except Exception as exc:
            if not is_store_outage(exc):
                log.exception("verdict writer: unexpected failure; holding %d verdicts for a retry", len(batch))
            self._log.failed(f"could not store {len(batch)} verdicts; holding them for a retry", exc)
            self._hold(batch)
            return
        self._log.succeeded()

    async def _store(self, batch: list[_Pending]) -> None:
        """Commit a batch and settle its waiters; rows refused on their own are isolated (``_RowsRefused``).

        Raises on an outage, leaving the batch unsettled for the caller to hold.
        """
        assert self._sessions is not None
        try:
            await self._commit(batch)
        except Exception as exc:
            if is_store_outage(exc):
                raise
            await self._isolate(batch, exc)
            raise _RowsRefused from exc
        self._settle(batch, stored=True)

    async def _commit(self, batch: list[_Pending]) -> None:
        assert self._sessions is not None
        async with self._sessions() as session:
            # Complete verdicts are also the ratings of judge:<profile>, read from here by agreement studies
            # (judge/store/judge_ratings.py): nothing more to write.
            await VerdictRepository(session).add_many(
                [(p.verdict, p.sample) for p in batch], axes=[p.axes for p in batch]
            )
            await session.commit()

    async def _isolate(self, batch: list[_Pending], cause: BaseException) -> None:
        """One transaction per row: the good rows are stored, a row refused on its own is set aside."""
        log.warning("a batch of %d verdicts was refused (%s); storing them one by one", len(batch), cause)
        for index, pending in enumerate(batch):
            try:
                await self._commit([pending])
            except Exception as exc:
                if is_store_outage(exc):
                    # The store went away meanwhile: hold this row and the rest for a retry.
                    self._hold(batch[index:])
                    return
                self._refuse(pending, exc)
            else:
                self._settle([pending], stored=True)

    def _refuse(self, pending: _Pending, exc: BaseException) -> None:
        self.rejected += 1
        metrics.VERDICTS_REFUSED.inc()
        record = encode(pending.verdict, pending.sample)
        where = self._spool.reject([record]) if self._spool is not None else None
        log.error("verdict %s refused by the store (%s: %s); kept in %s",
                  pending.verdict.id, type(exc).__name__, exc, where or "nowhere (no spool)")  # fmt: skip
        self._settle([pending], stored=False)

    def _settle(self, batch: list[_Pending], *, stored: bool) -> None:
        for pending in batch:
            self._held_ids.discard(pending.verdict.id)
            pending.settle(stored)
        metrics.PENDING_WRITES.set(len(self._held_ids))

    async def _cache_complete(self, batch: list[_Pending]) -> None:
        items = {p.verdict.cache_key: verdict_json(p.verdict, p.axes) for p in batch if p.verdict.complete}
        if items:
            await self._cache.set_many(items)

    # --- holding, spilling and retrying ----------------------------------------------------------------

    def _hold(self, batch: list[_Pending]) -> None:
        """Keep verdicts for a retry; the oldest spill to the spool past ``buffer_max``."""
        self._outage = True
        for pending in batch:
            if pending.verdict.id not in self._held_ids:
                self._held.append(pending)
                self._held_ids.add(pending.verdict.id)
            pending.settle(False)
        overflow = len(self._held) - self._buffer_max
        if overflow > 0:
            self._spill([self._held.popleft() for _ in range(overflow)])
        metrics.PENDING_WRITES.set(len(self._held_ids))
        self._ensure_retrying()

    def _spill(self, items: list[_Pending]) -> None:
        if self._spool is None:
            # No spool configured: keep them in memory rather than lose them.
            self._held.extendleft(reversed(items))
            return
        try:
            self._spool.append([encode(p.verdict, p.sample) for p in items])
        except OSError as exc:
            # A read-only or full disk: keep them in memory (over the bound) rather than lose them.
            log.error("cannot spill %d verdicts to %s (%s); keeping them in memory", len(items),
                      self._spool.directory, exc)  # fmt: skip
            self._held.extendleft(reversed(items))
            return
        self.spilled += len(items)
        metrics.VERDICTS_SPOOLED.inc(len(items))
        for pending in items:
            self._held_ids.discard(pending.verdict.id)

    def _retrying(self) -> bool:
        return self._retry_task is not None and not self._retry_task.done()

    def _ensure_retrying(self) -> None:
        if not self._retrying():
            self._retry_task = asyncio.create_task(self._retry_loop(), name="verdict-writer-retry")

    async def _retry_loop(self) -> None:
        """Drain the buffer, then the spool, with jittered exponential backoff until the store takes them."""
        retrying = AsyncRetrying(
            wait=wait_random_exponential(multiplier=0.1, max=self._max_backoff_s),
            retry=retry_if_exception(is_store_outage),
            stop=stop_never,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._drain_held()
                    await self._replay_spool()
        except Exception:
            log.exception("verdict writer: retry loop stopped; held verdicts stay in memory")
            raise

    async def _drain_held(self) -> None:
        while self._held:
            batch = list(itertools.islice(self._held, _MAX_BATCH))
            with contextlib.suppress(_RowsRefused):
                await self._store(batch)
            # Stored and refused rows are settled (their ids gone); rows held again by an outage during
            # isolation keep their ids and their place.
            settled = {id(p) for p in batch if p.verdict.id not in self._held_ids}
            self._held = deque(p for p in self._held if id(p) not in settled)
            if len(settled) < len(batch):
                raise ConnectionError("the store went away while isolating refused rows")
        if self._queue.empty() and not self._batch:
            self._outage = False
            self._log.succeeded()

    async def _replay_spool(self) -> None:
        if self._spool is None:
            return
        # The file this process appends to becomes replayable once closed (a new spill opens another).
        self._spool.close_own()
        for spooled in self._spool.claim():
            try:
                records = list(spooled.records())
                for start in range(0, len(records), _MAX_BATCH):
                    chunk = [_Pending(v, s) for v, s in records[start : start + _MAX_BATCH]]
                    with contextlib.suppress(_RowsRefused):
                        await self._store(chunk)
                    if any(p.verdict.id in self._held_ids for p in chunk):
                        # The store went away mid-file: those rows are held again; the file is kept (replay is
                        # idempotent), and the retry loop comes back to it.
                        raise ConnectionError("store went away during spool replay")
                self.replayed += len(records)
                metrics.VERDICTS_REPLAYED.inc(len(records))
                log.warning("replayed %d spooled verdicts from %s", len(records), spooled.path.name)
                spooled.done()
            except BaseException:
                spooled.release()
                raise

    # --- shutdown ----------------------------------------------------------------------------------------

    async def aclose(self, flush_timeout_s: float | None = None) -> None:
        """Finish what is queued; give the store ``flush_timeout_s`` to take what is held, then spool the rest."""
        if flush_timeout_s is None:
            flush_timeout_s = self._flush_timeout_s
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), flush_timeout_s)
        if self._held and self._retrying():
            await self.settled(timeout=flush_timeout_s)
        for task in (self._task, self._retry_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._retry_task = None
        left = list(self._held) + self._batch
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        if left:
            try:
                if self._spool is None:
                    raise OSError("no spool configured")
                # Duplicates of rows that did commit are harmless: replay inserts ON CONFLICT DO NOTHING.
                self._spool.append([encode(p.verdict, p.sample) for p in left])
                metrics.VERDICTS_SPOOLED.inc(len(left))
                log.warning("store unreachable at shutdown: %d verdicts written to the spool %s",
                            len(left), self._spool.directory)  # fmt: skip
            except OSError as exc:
                log.error("store unreachable at shutdown and the spool failed (%s): %d verdicts not stored: %s",
                          exc, len(left), ", ".join(p.verdict.id for p in left[:20]))  # fmt: skip
            self._held.clear()
            self._held_ids.clear()
        if self._spool is not None:
            self._spool.close_own()


__all__ = ["VerdictWriter", "decode"]
