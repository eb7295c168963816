"""Retry classification, Retry-After handling and the attempt/time caps (with a recording fake sleep)."""

from __future__ import annotations

import email.utils

import httpx2
import openai
import pytest
from prometheus_client import REGISTRY
from tenacity import RetryCallState, wait_fixed

from judge.backends.openai.retry import (
    is_retryable,
    make_retrying,
    retried,
    retry_after_seconds,
    retry_reason,
    wait_retry_after,
)
from judge.profiles import JudgeProfile

_REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    response = httpx2.Response(status, headers=headers or {}, request=_REQUEST)
    classes: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    cls = classes.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    return cls(f"HTTP {status} 错误", response=response, body=None)


@pytest.mark.parametrize(
    "exc",
    [
        _status_error(429),
        _status_error(500),
        _status_error(502),
        _status_error(503),
        _status_error(408),
        openai.APITimeoutError(request=_REQUEST),
        openai.APIConnectionError(request=_REQUEST),
    ],
    ids=["429", "500", "502", "503", "408", "timeout", "connection"],
)
def test_transient_failures_are_retried(exc: BaseException) -> None:
    assert is_retryable(exc)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not is_retryable(_status_error(status))


def test_other_exceptions_are_not_retried() -> None:
    assert not is_retryable(ValueError("坏的响应"))


def test_retry_reasons() -> None:
    assert retry_reason(_status_error(429)) == "rate_limit"
    assert retry_reason(_status_error(503)) == "status_503"
    assert retry_reason(openai.APITimeoutError(request=_REQUEST)) == "timeout"
    assert retry_reason(openai.APIConnectionError(request=_REQUEST)) == "connection"


def test_retry_after_seconds_ms_and_date() -> None:
    assert retry_after_seconds(_status_error(429, {"retry-after": "3"})) == 3.0
    assert retry_after_seconds(_status_error(429, {"retry-after": "1.5"})) == 1.5
    assert retry_after_seconds(_status_error(429, {"retry-after-ms": "250"})) == 0.25
    # retry-after-ms is the finer of the two when both come.
    assert retry_after_seconds(_status_error(429, {"retry-after-ms": "250", "retry-after": "1"})) == 0.25
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_after_seconds(_status_error(503, {"retry-after": date}), now=now) == pytest.approx(7.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after_seconds(_status_error(503, {"retry-after": past}), now=now) == 0.0


def test_retry_after_absent_or_unreadable() -> None:
    assert retry_after_seconds(_status_error(429)) is None
    assert retry_after_seconds(_status_error(429, {"retry-after": "soon"})) is None
    assert retry_after_seconds(openai.APITimeoutError(request=_REQUEST)) is None
    assert retry_after_seconds(None) is None


class _Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class _Flaky:
    """Raises the given failures in turn, then returns "好"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "好"


def _profile(**kwargs: object) -> JudgeProfile:
    return JudgeProfile.model_validate({"name": "retry-test", "model": "m", **kwargs})


async def test_retry_after_is_honoured_then_success() -> None:
    sleeps, seen = _Sleeps(), list[BaseException]()
    flaky = _Flaky(_status_error(429, {"retry-after": "2"}), _status_error(500))
    retrying = make_retrying(_profile(), on_retry=seen.append).copy(sleep=sleeps)

    assert await retrying(flaky) == "好"
    assert flaky.calls == 3
    assert 2.0 <= sleeps.waits[0] <= 2.2  # the server's wait plus at most 10 % jitter
    assert 0.0 <= sleeps.waits[1] <= 1.0  # first backoff window without Retry-After
    assert [type(exc) for exc in seen] == [openai.RateLimitError, openai.InternalServerError]


async def test_attempts_capped_by_max_retries() -> None:
    sleeps = _Sleeps()
    flaky = _Flaky(*(_status_error(503) for _ in range(10)))
    before = REGISTRY.get_sample_value("rj_judge_retries_total", {"judge": "retry-test", "reason": "status_503"}) or 0
    retrying = make_retrying(_profile(max_retries=2)).copy(sleep=sleeps)

    with pytest.raises(openai.InternalServerError):
        await retrying(flaky)
    assert flaky.calls == 3
    assert len(sleeps.waits) == 2
    after = REGISTRY.get_sample_value("rj_judge_retries_total", {"judge": "retry-test", "reason": "status_503"})
    assert after == before + 2


async def test_no_retry_when_max_retries_is_zero() -> None:
    flaky = _Flaky(_status_error(500))
    with pytest.raises(openai.InternalServerError):
        await make_retrying(_profile(max_retries=0)).copy(sleep=_Sleeps())(flaky)
    assert flaky.calls == 1


async def test_bad_request_is_raised_at_once() -> None:
    sleeps = _Sleeps()
    flaky = _Flaky(_status_error(400))

    with pytest.raises(openai.BadRequestError):
        await make_retrying(_profile()).copy(sleep=sleeps)(flaky)
    assert flaky.calls == 1
    assert sleeps.waits == []


async def test_retry_after_beyond_the_budget_stops_without_waiting() -> None:
    sleeps = _Sleeps()
    flaky = _Flaky(_status_error(429, {"retry-after": "600"}))

    with pytest.raises(openai.RateLimitError):
        await make_retrying(_profile(retry_budget_s=30)).copy(sleep=sleeps)(flaky)
    assert flaky.calls == 1
    assert sleeps.waits == []


def test_wait_falls_back_without_retry_after() -> None:
    wait = wait_retry_after(wait_fixed(0.123))
    state = RetryCallState(retry_object=make_retrying(_profile()), fn=None, args=(), kwargs={})

    assert wait(state) == 0.123
    state.set_exception((openai.InternalServerError, _status_error(500), None))
    assert wait(state) == 0.123
    state.set_exception((openai.RateLimitError, _status_error(429, {"retry-after-ms": "300"}), None))
    assert 0.3 <= wait(state) <= 0.33


async def test_retried_runs_a_first_success_once_without_waiting() -> None:
    sleeps, seen = _Sleeps(), list[BaseException]()
    flaky = _Flaky()
    assert await retried(flaky, _profile(), on_retry=seen.append, sleep=sleeps) == "好"
    assert (flaky.calls, sleeps.waits, seen) == (1, [], [])


async def test_retried_hands_a_retryable_first_failure_to_tenacity_as_its_first_attempt() -> None:
    sleeps, seen = _Sleeps(), list[BaseException]()
    flaky = _Flaky(_status_error(429, {"retry-after": "2"}), _status_error(500))
    assert await retried(flaky, _profile(), on_retry=seen.append, sleep=sleeps) == "好"
    # The same attempts, waits and retry counts as tenacity running every attempt (the test above).
    assert flaky.calls == 3
    assert 2.0 <= sleeps.waits[0] <= 2.2 and 0.0 <= sleeps.waits[1] <= 1.0
    assert [type(exc) for exc in seen] == [openai.RateLimitError, openai.InternalServerError]


async def test_retried_keeps_the_attempt_cap_and_raises_the_rest_at_once() -> None:
    capped = _Flaky(*(_status_error(503) for _ in range(10)))
    with pytest.raises(openai.InternalServerError):
        await retried(capped, _profile(max_retries=2), sleep=_Sleeps())
    assert capped.calls == 3
    bad = _Flaky(_status_error(400))
    with pytest.raises(openai.BadRequestError):
        await retried(bad, _profile(), sleep=_Sleeps())
    assert bad.calls == 1
    never = _Flaky(_status_error(500))
    with pytest.raises(openai.InternalServerError):
        await retried(never, _profile(max_retries=0), sleep=_Sleeps())
    assert never.calls == 1


async def test_retried_counts_the_time_budget_from_the_first_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    # A first attempt that took 25 s of a 30 s budget leaves no room for a 10 s Retry-After.
    import time

    sleeps = _Sleeps()
    calls = 0
    real_monotonic = time.monotonic

    async def slow_then_limited() -> str:
        nonlocal calls
        calls += 1
        monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + 25.0)  # the attempt took 25 s
        raise _status_error(429, {"retry-after": "10"})

    with pytest.raises(openai.RateLimitError):
        await retried(slow_then_limited, _profile(retry_budget_s=30), sleep=sleeps)
    assert calls == 1 and sleeps.waits == []
