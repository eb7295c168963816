"""Which judge-call failures are retried, and how long to wait between attempts.

Retried: 429, 408, 5xx, timeouts and connection errors. Never retried: other 4xx (bad request, auth,
not found, unprocessable, context length), which would fail the same way again. Waits are jittered
exponential backoff, or the server's ``Retry-After`` / ``retry-after-ms`` when it sends one; attempts are
capped by ``profile.max_retries`` and the total time by ``profile.retry_budget_s``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from judge.metrics import JUDGE_RETRIES
from judge.profiles import JudgeProfile

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429})
# Backoff without Retry-After: full jitter, window starting at 0.5 s and capped at 30 s.
BACKOFF_MULTIPLIER_S = 0.5
BACKOFF_MAX_S = 30.0


def is_retryable(exc: BaseException) -> bool:
    """True for transient failures: rate limits, server errors, timeouts, lost connections."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in RETRYABLE_STATUS
    return False


def retry_reason(exc: BaseException) -> str:
    """A short label for metrics."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        return "rate_limit" if exc.status_code == 429 else f"status_{exc.status_code}"
    return type(exc).__name__


def retry_after_seconds(exc: BaseException | None, now: float | None = None) -> float | None:
    """The wait the server asked for (``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class wait_retry_after(wait_base):  # noqa: N801 -- named like tenacity's own wait strategies
    """Wait what the server asked for (plus a little jitter so clients don't return in step), else ``fallback``."""

    def __init__(self, fallback: wait_base, max_jitter_s: float = 1.0) -> None:
        self.fallback = fallback
        self.max_jitter_s = max_jitter_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        asked = retry_after_seconds(exc)
        if asked is None:
            return self.fallback(retry_state)
        return asked + random.uniform(0.0, min(self.max_jitter_s, 0.1 * asked))


async def retried(
    attempt: Callable[[], Awaitable[T]],
    profile: JudgeProfile,
    on_retry: Callable[[BaseException], None] | None = None,
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """``attempt()`` under ``profile``'s retry policy (:func:`make_retrying`).

    The first attempt runs bare; tenacity takes over from its failure, if it is a retryable one, seeing it as its
    own first attempt (so waits, caps, counts and the time budget, measured from the first attempt's start, are
    tenacity's exactly as if it had run it). Building a tenacity controller, which inspects each of its actions on
    every call, was ~5 % of the API's CPU per judged sample, for calls that nearly all succeed at once.
    ``sleep``: tenacity's sleep (tests pass a recorder).
    """
    started = time.monotonic()
    try:
        return await attempt()
    except Exception as exc:
        if profile.max_retries == 0 or not is_retryable(exc):
            raise
        first: BaseException | None = exc

    async def again() -> T:
        nonlocal first
        if first is not None:
            failure, first = first, None
            raise failure
        return await attempt()

    retrying = make_retrying(profile, on_retry=on_retry, started=started)
    if sleep is not None:
        retrying = retrying.copy(sleep=sleep)
    result: T = await retrying(again)
    return result


def make_retrying(
    profile: JudgeProfile, on_retry: Callable[[BaseException], None] | None = None, *, started: float | None = None
) -> AsyncRetrying:
    """A tenacity controller for one judge call under ``profile``'s retry caps.

    ``on_retry`` is called with the failure before each wait (to count retries in usage). ``started``: when the
    call's first attempt began (``time.monotonic()``), if before this controller's; the time budget counts from it.
    """

    def before(state: RetryCallState) -> None:
        if started is not None and state.attempt_number == 1:
            state.start_time = started

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if exc is None:
            return
        JUDGE_RETRIES.labels(judge=profile.name, reason=retry_reason(exc)).inc()
        if on_retry is not None:
            on_retry(exc)

    return AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(profile.max_retries + 1) | stop_before_delay(profile.retry_budget_s),
        wait=wait_retry_after(wait_random_exponential(multiplier=BACKOFF_MULTIPLIER_S, max=BACKOFF_MAX_S)),
        before=before,
        before_sleep=before_sleep,
        reraise=True,
    )
