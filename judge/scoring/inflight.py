"""Judge calls in flight: shared by every request that wants the same key, and cancelled when all gave up.

A call is never cancelled by a waiter's deadline (late verdicts still reach the store and the cache); it is
cancelled only a bounded grace after the last waiter's deadline, so abandoned calls do not hold the judge's
slots while fresh requests time out.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from judge import metrics
from judge.verdicts import Verdict

log = logging.getLogger(__name__)


class InflightCalls:
    """Single and group judge calls in progress by key, with the deadline claims on them."""

    def __init__(self, grace_s: float | None) -> None:
        self._singles: dict[str, asyncio.Task[Verdict]] = {}
        self._groups: dict[str, asyncio.Task[dict[str, Verdict]]] = {}
        # None: calls are never cancelled.
        self._grace_s = grace_s
        self._expiry: dict[str, float] = {}

    def single(self, key: str) -> asyncio.Task[Verdict] | None:
        """The call judging this sample key, if one is in flight."""
        return self._singles.get(key)

    def add_single(self, key: str, task: asyncio.Task[Verdict]) -> None:
        """Share this call with later requests for the key until it ends."""
        self._singles[key] = task
        task.add_done_callback(self._forget(self._singles, key))

    def group(self, call_key: str) -> asyncio.Task[dict[str, Verdict]] | None:
        """The group call named by this key, if one is in flight."""
        return self._groups.get(call_key)

    def add_group(self, call_key: str, task: asyncio.Task[dict[str, Verdict]]) -> None:
        """Share this group call with later requests for it until it ends."""
        self._groups[call_key] = task
        task.add_done_callback(self._forget(self._groups, call_key))

    def pending(self) -> list[asyncio.Task[Any]]:
        """Every call in flight."""
        return [*self._singles.values(), *self._groups.values()]

    async def wait(self, tasks: Mapping[str, asyncio.Task[Any]], deadline_s: float | None) -> None:
        """Wait for these calls until the deadline; asyncio.wait never cancels them."""
        self._claim(tasks, deadline_s)
        await asyncio.wait(set(tasks.values()), timeout=deadline_s)

    @staticmethod
    def _forget(inflight: dict[str, Any], key: str) -> Callable[[asyncio.Task[Any]], None]:
        def done(_: asyncio.Task[Any]) -> None:
            inflight.pop(key, None)

        return done

    def _claim(self, tasks: Mapping[str, asyncio.Task[Any]], deadline_s: float | None) -> None:
        """This waiter wants each call until its deadline plus the grace (for ever without a deadline).

        A call is cancelled once the latest claim on it has passed: it answered nobody then, so nothing
        answered is lost, and its judge slot goes to fresh requests instead of being held for minutes.
        """
        if self._grace_s is None:
            return
        loop = asyncio.get_running_loop()
        expiry = math.inf if deadline_s is None else loop.time() + deadline_s + self._grace_s
        for key, task in tasks.items():
            current = self._expiry.get(key)
            if current is None:
                task.add_done_callback(self._forget(self._expiry, key))
            elif current >= expiry:
                continue
            self._expiry[key] = expiry
            if expiry != math.inf:
                loop.call_at(expiry, self._expire, key, task)

    def _expire(self, key: str, task: asyncio.Task[Any]) -> None:
        if task.done() or self._expiry.get(key, 0.0) > asyncio.get_running_loop().time():
            return
        log.info("judge call %s abandoned by every waiter; cancelled after the %.1f s grace", key[:12], self._grace_s)
        metrics.JUDGE_CALLS_ABANDONED.inc()
        # Off the in-flight maps at once: a request arriving before the cancel lands starts a fresh call.
        for inflight in (self._singles, self._groups):
            if inflight.get(key) is task:
                del inflight[key]
        task.cancel()
