"""Hedged judge calls: correctness (who wins, what is counted, what is cancelled); speed is in bench/bench_cost.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from judge.backends.openai.hedge import MAX_HEDGES, MIN_OBSERVATIONS, HedgePolicy, hedged
from judge.profiles import JudgeProfile
from judge.samples import Sample
from rubrics.schema import Rubric
from tests.judge.conftest import MakeJudge, axis_scores, metric_value
from tests.support.openai_server import OpenAIServer, Slow, Verdict, default_scores, server_error


class _Calls:
    """Scripted sends: each call takes the next (delay, answer or exception); records what happened to it."""

    def __init__(self, *plan: tuple[float, object]) -> None:
        self.plan = list(plan)
        self.started = 0
        self.cancelled = 0
        self.hedges = 0

    def on_hedge(self) -> None:
        self.hedges += 1

    async def send(self, went_out: asyncio.Event | None) -> str:
        delay, answer = self.plan[self.started]
        self.started += 1
        if went_out is not None:
            went_out.set()
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if isinstance(answer, BaseException):
            raise answer
        return str(answer)


async def test_fast_answer_sends_no_hedge() -> None:
    calls = _Calls((0.0, "first"))
    assert await hedged(calls.send, 5.0, calls.on_hedge) == ("first", False)
    assert calls.started == 1 and calls.hedges == 0


async def test_slow_call_is_hedged_and_the_first_answer_wins() -> None:
    calls = _Calls((30.0, "stalled"), (0.0, "hedge"))
    assert await hedged(calls.send, 0.05, calls.on_hedge) == ("hedge", True)
    assert calls.hedges == 1 and calls.started == 2
    assert calls.cancelled == 1  # the stalled call does not linger


async def test_original_can_still_win_after_the_hedges_went_out() -> None:
    calls = _Calls((0.2, "original"), (30.0, "hedge"), (30.0, "second hedge"))
    assert await hedged(calls.send, 0.02, calls.on_hedge) == ("original", False)
    assert calls.hedges == 2 and calls.cancelled == 2


async def test_a_stalled_hedge_is_hedged_again_and_hedges_stop_at_the_limit() -> None:
    # A hedge is an independent request and can stall too (the bench's quick run: 1 % stalls, and the only
    # hedge of a stalled call drew a stall, holding the batch 30 s). Another hedge goes out a threshold later.
    calls = _Calls((30.0, "stalled"), (30.0, "stalled hedge"), (0.0, "second hedge"))
    started = time.monotonic()
    assert await asyncio.wait_for(hedged(calls.send, 0.05, calls.on_hedge), 5) == ("second hedge", True)
    assert time.monotonic() - started < 5
    assert calls.hedges == 2 and calls.started == 3 and calls.cancelled == 2

    stalls = _Calls(*[(30.0, "stalled")] * (MAX_HEDGES + 2))
    task = asyncio.ensure_future(hedged(stalls.send, 0.02, stalls.on_hedge))
    await asyncio.sleep(0.3)  # fifteen thresholds
    assert stalls.started == MAX_HEDGES + 1 and stalls.hedges == MAX_HEDGES
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stalls.cancelled == MAX_HEDGES + 1


async def test_a_failure_waits_for_the_other_calls_and_all_failing_raises_the_first() -> None:
    calls = _Calls((0.1, RuntimeError("first failed")), (0.2, "hedge"), (0.3, "second hedge"))
    assert await hedged(calls.send, 0.02, calls.on_hedge) == ("hedge", True)

    failing = [RuntimeError("first failed"), ValueError("hedge failed"), ValueError("second hedge failed")]
    every = _Calls(*((0.1 * (i + 1), error) for i, error in enumerate(failing)))
    with pytest.raises(RuntimeError, match="first failed"):
        await hedged(every.send, 0.02, every.on_hedge)
    assert every.started == MAX_HEDGES + 1


async def test_a_percentile_policy_without_enough_answers_yet_still_hedges_once_it_has_them() -> None:
    # The first wave of a fresh judge goes out before any answer came back: a stall among those calls is hedged
    # as soon as the percentile is known, timed from when the stalled call went out.
    policy = HedgePolicy(percentile=90)
    calls = _Calls((30.0, "stalled"), (0.0, "hedge"))
    task = asyncio.ensure_future(hedged(calls.send, policy.threshold_s, calls.on_hedge))
    await asyncio.sleep(0.2)
    assert calls.hedges == 0 and not task.done()  # nothing known yet: no hedge
    for _ in range(MIN_OBSERVATIONS):
        policy.observe(0.01)  # the rest of the wave answered in 10 ms
    assert await asyncio.wait_for(task, 5) == ("hedge", True)
    assert calls.hedges == 1 and calls.cancelled == 1


async def test_no_threshold_means_one_plain_call() -> None:
    calls = _Calls((0.05, "only"))
    assert await hedged(calls.send, None, calls.on_hedge) == ("only", False)
    assert calls.hedges == 0


async def test_the_clock_starts_when_the_request_goes_out_not_while_it_queues() -> None:
    slot = asyncio.Event()
    hedges = 0

    def on_hedge() -> None:
        nonlocal hedges
        hedges += 1

    async def send(went_out: asyncio.Event | None) -> str:
        await slot.wait()  # a concurrency slot held by others
        if went_out is not None:
            went_out.set()
        return "answer"

    task = asyncio.ensure_future(hedged(send, 0.02, on_hedge))
    await asyncio.sleep(0.2)  # ten thresholds in the queue
    assert hedges == 0 and not task.done()
    slot.set()
    assert await task == ("answer", False)
    assert hedges == 0


async def test_cancelling_the_caller_cancels_every_call() -> None:
    calls = _Calls((30.0, "a"), (30.0, "b"), (30.0, "c"))
    task = asyncio.ensure_future(hedged(calls.send, 0.02, calls.on_hedge))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls.started == 3 and calls.cancelled == 3


def test_policy_fixed_percentile_and_floor() -> None:
    fixed = HedgePolicy(after_ms=1500)
    assert fixed.threshold_s() == 1.5

    learned = HedgePolicy(percentile=90)
    for i in range(MIN_OBSERVATIONS - 1):
        learned.observe(0.1 + i / 1000)
    assert learned.threshold_s() is None  # too few answers to trust a percentile
    for i in range(200):
        learned.observe((i % 100 + 1) / 100)  # 0.01 .. 1.00 s
    threshold = learned.threshold_s()
    assert threshold is not None and 0.8 <= threshold <= 1.0

    floored = HedgePolicy(after_ms=2000, percentile=90)
    for _ in range(100):
        floored.observe(0.1)
    assert floored.threshold_s() == 2.0

    profile = JudgeProfile(name="p", model="m")
    assert HedgePolicy.for_profile(profile) is None
    assert HedgePolicy.for_profile(profile.model_validate({**profile.model_dump(), "hedge_after_ms": 250})) is not None


@pytest.mark.parametrize("stalls", [1, 2])
async def test_judge_hedges_a_stalled_call_and_again_when_its_hedge_stalls_too(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample, stalls: int
) -> None:
    openai_server.script(*[Slow(30.0)] * stalls, Verdict())
    judge = make_judge(hedge_after_ms=100, timeout_s=60.0)
    started = time.monotonic()
    outcome = await asyncio.wait_for(judge.score(zh_sample, tiny_rubric), 10)

    assert time.monotonic() - started < 10
    assert outcome.complete and axis_scores(outcome) == default_scores(openai_server.last_request)
    assert openai_server.calls == stalls + 1
    assert outcome.usage.calls == 1 and outcome.usage.hedges == stalls and outcome.usage.retries == 0
    # The metric counts hedge calls: the last one won, an earlier stalled hedge lost.
    assert metric_value("rj_judge_hedges_total", judge=judge.profile.name, outcome="won") == 1
    assert (metric_value("rj_judge_hedges_total", judge=judge.profile.name, outcome="lost") or 0) == stalls - 1


async def test_judge_with_a_percentile_only_policy_hedges_a_stall_in_its_first_wave(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    # A fresh judge, hedge_percentile alone: the first call stalls before any answer was observed.
    openai_server.script(Slow(30.0), *[Verdict()] * MIN_OBSERVATIONS)
    judge = make_judge(hedge_percentile=90, timeout_s=60.0)
    first = asyncio.ensure_future(judge.score(zh_sample, tiny_rubric))
    await asyncio.sleep(0.2)
    await asyncio.gather(*(judge.score(zh_sample, tiny_rubric) for _ in range(MIN_OBSERVATIONS)))
    try:
        outcome = await asyncio.wait_for(first, 5)
    finally:
        first.cancel()
    assert outcome.complete and outcome.usage.hedges == 1


async def test_judge_without_stall_sends_no_hedge(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    judge = make_judge(hedge_after_ms=5000)
    outcome = await judge.score(zh_sample, tiny_rubric)

    assert outcome.complete and outcome.usage.hedges == 0 and openai_server.calls == 1


async def test_hedged_call_that_fails_both_ways_is_retried_then_scored(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    # The first call stalls then errors, both hedges error too: a retryable failure; the retry answers.
    openai_server.script(Slow(0.3, server_error(503)), server_error(503), server_error(503), Verdict())
    judge = make_judge(hedge_after_ms=50, timeout_s=30.0)
    outcome = await judge.score(zh_sample, tiny_rubric)

    assert outcome.complete
    assert outcome.usage.retries == 1 and outcome.usage.hedges == MAX_HEDGES
    assert metric_value("rj_judge_hedges_total", judge=judge.profile.name, outcome="failed") == MAX_HEDGES
