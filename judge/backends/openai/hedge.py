"""Hedged judge calls: when a call has had no answer for a while, send the same request again; the first answer wins.

A judge where a small share of calls hang (a stuck connection, a slow replica) otherwise holds a whole batch for
the profile's ``timeout_s``. Hedging is opt-in per profile: ``hedge_after_ms`` (a fixed threshold) and/or
``hedge_percentile`` (that percentile of the judge's recent answer latencies, never below ``hedge_after_ms``).
The clock starts when a request goes out, not while it waits for a concurrency slot, so a queued batch does
not hedge itself. A hedge is an independent request, so it can stall too: while no call has answered, another
hedge goes out a threshold after the latest one went out, up to ``MAX_HEDGES`` per attempt. The losers are
cancelled. Every extra call is counted (``usage.hedges``); only the winner's tokens are known.
"""

from __future__ import annotations

import asyncio
import math
import time
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

# Hedges per attempt. One is not enough: a hedge stalls as often as any other call (stalls are per request), so
# with one hedge, a batch with k stalled calls still waits for a whole stall with probability about k·p (the
# bench's quick run hit it: its only stalled hedge held the batch 30 s). With two, about k·p². gRPC's hedging
# policy works the same way (a new attempt every hedgingDelay while none has answered, maxAttempts in all).
MAX_HEDGES = 2

# While a percentile threshold is still unknown (too few answers yet), how often a waiting call looks again.
POLL_S = 0.05

# What a send receives: an event to set when the request actually goes out (after its concurrency slot).
Send = Callable[[asyncio.Event | None], Awaitable[T]]

# When to hedge: seconds, or a function giving the current threshold (None: not known yet), looked up while the
# call waits, so calls sent before a percentile policy has enough answers are still hedged once it has them.
Threshold = float | Callable[[], float | None] | None


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


class _WentOut(asyncio.Event):
    """The event a send sets when its request goes out; remembers when (the hedge clock's start)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None

    def set(self) -> None:
        if self.at is None:
            self.at = time.monotonic()
        super().set()


def _constant(seconds: float) -> Callable[[], float | None]:
    return lambda: seconds


async def hedged(send: Send[T], after_s: Threshold, on_hedge: Callable[[], None]) -> tuple[T, bool]:
    """``send`` once, and again (up to ``MAX_HEDGES`` times) while no answer came ``after_s`` after the latest went out.

    ``after_s``: seconds, ``None`` (one plain call), or a function giving the current threshold (``None`` from it:
    not known yet, look again). Returns the first successful answer and whether a hedge gave it. A failure of one
    call while another is still running waits for the other; when all fail, the first failure is raised (for the
    retry policy to classify). The other calls are cancelled, and so are all when the caller is.
    """
    if after_s is None:
        return await send(None), False
    threshold = after_s if callable(after_s) else _constant(after_s)
    latest = _WentOut()
    calls: list[asyncio.Future[T]] = [asyncio.ensure_future(send(latest))]
    pending: set[asyncio.Future[T]] = set(calls)
    failure: BaseException | None = None
    try:
        while pending:
            waiting: set[asyncio.Future[Any]] = set(pending)
            timeout: float | None = None
            went_out: asyncio.Future[Any] | None = None
            may_hedge = len(calls) <= MAX_HEDGES
            if may_hedge and latest.at is None:
                went_out = asyncio.ensure_future(latest.wait())
                waiting.add(went_out)
            elif may_hedge and latest.at is not None:
                limit = threshold()
                timeout = POLL_S if limit is None else max(0.0, latest.at + limit - time.monotonic())
            try:
                done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if went_out is not None:
                    went_out.cancel()
            # When several finish together, the earliest sent call's answer is taken.
            for task in sorted((task for task in calls if task in done), key=calls.index):
                pending.discard(task)
                error = task.exception()
                if error is None:
                    return task.result(), task is not calls[0]
                failure = failure or error
            if not pending or not may_hedge or latest.at is None:
                continue
            limit = threshold()
            if limit is not None and time.monotonic() - latest.at >= limit:
                on_hedge()
                latest = _WentOut()
                calls.append(asyncio.ensure_future(send(latest)))
                pending.add(calls[-1])
        assert failure is not None
        raise failure
    finally:
        for task in calls:
            task.cancel()
        # Retrieve every outcome (a cancelled loser, a failure nobody raised) so none is logged as lost.
        await asyncio.gather(*calls, return_exceptions=True)
