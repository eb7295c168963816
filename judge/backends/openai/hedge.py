"""Hedged judge calls: when a call has had no answer for a while, send the same request again; the first answer wins.

A judge where a small share of calls hang (a stuck connection, a slow replica) otherwise holds a whole batch for
the profile's ``timeout_s``. Hedging is opt-in per profile: ``hedge_after_ms`` (a fixed threshold) and/or
``hedge_percentile`` (that percentile of the judge's recent answer latencies, never below ``hedge_after_ms``).
The clock starts when the request goes out, not while it waits for a concurrency slot, so a queued batch does
not hedge itself. At most one hedge per attempt; the loser is cancelled. The extra call is counted
(``usage.hedges`` and ``rj_judge_hedges_total``); only the winner's tokens are known.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from judge.profiles import JudgeProfile

T = TypeVar("T")

# A percentile needs this many observed answers before it is trusted; until then the fixed threshold (if any)
# applies. The window follows the judge's recent behaviour; the percentile is recomputed every few answers.
MIN_OBSERVATIONS = 32
WINDOW = 512
RECOMPUTE_EVERY = 16

# What a send receives: an event to set when the request actually goes out (after its concurrency slot).
Send = Callable[[asyncio.Event | None], Awaitable[T]]


class HedgePolicy:
    """When to hedge a profile's calls: a fixed threshold, a latency percentile, or both (the larger)."""

    def __init__(self, after_ms: float | None = None, percentile: float | None = None) -> None:
        if after_ms is None and percentile is None:
            raise ValueError("a hedge policy needs hedge_after_ms or hedge_percentile")
        self.fixed_s = after_ms / 1000 if after_ms is not None else None
        self.percentile = percentile
        self._latencies: deque[float] = deque(maxlen=WINDOW)
        self._seen = 0
        self._quantile_s: float | None = None

    @classmethod
    def for_profile(cls, profile: JudgeProfile) -> HedgePolicy | None:
        if profile.hedge_after_ms is None and profile.hedge_percentile is None:
            return None
        return cls(profile.hedge_after_ms, profile.hedge_percentile)

    def observe(self, seconds: float) -> None:
        """An answer's latency, from the moment its request went out."""
        if self.percentile is None:
            return
        self._latencies.append(seconds)
        self._seen += 1
        if len(self._latencies) >= MIN_OBSERVATIONS and (self._quantile_s is None or self._seen % RECOMPUTE_EVERY == 0):
            ordered = sorted(self._latencies)
            rank = min(len(ordered) - 1, math.ceil(self.percentile / 100 * len(ordered)) - 1)
            self._quantile_s = ordered[max(0, rank)]

    def threshold_s(self) -> float | None:
        """Seconds without an answer after which to hedge; None: do not hedge (yet)."""
        if self._quantile_s is None:
            return self.fixed_s
        if self.fixed_s is None:
            return self._quantile_s
        return max(self.fixed_s, self._quantile_s)


async def hedged(send: Send[T], after_s: float | None, on_hedge: Callable[[], None]) -> tuple[T, bool]:
    """``send`` once, and once more if no answer came ``after_s`` seconds after it went out.

    Returns the first successful answer and whether the hedge gave it. A failure of one call while the other
    is still running waits for the other; when both fail, the first failure is raised (for the retry policy
    to classify). The other call is cancelled, and so are both when the caller is.
    """
    if after_s is None:
        return await send(None), False
    went_out = asyncio.Event()
    first: asyncio.Future[T] = asyncio.ensure_future(send(went_out))
    tasks: list[asyncio.Future[T]] = [first]
    try:
        sent: asyncio.Future[Any] = asyncio.ensure_future(went_out.wait())
        try:
            await asyncio.wait({first, sent}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sent.cancel()
        if not first.done():
            await asyncio.wait({first}, timeout=after_s)
        if first.done():
            return first.result(), False
        on_hedge()
        second: asyncio.Future[T] = asyncio.ensure_future(send(None))
        tasks.append(second)
        pending: set[asyncio.Future[T]] = {first, second}
        failure: BaseException | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            # When both finish together, the original call's answer is taken.
            for task in sorted(done, key=tasks.index):
                error = task.exception()
                if error is None:
                    return task.result(), task is second
                failure = failure or error
        assert failure is not None
        raise failure
    finally:
        for task in tasks:
            task.cancel()
        # Retrieve every outcome (a cancelled loser, a failure nobody raised) so none is logged as lost.
        await asyncio.gather(*tasks, return_exceptions=True)
