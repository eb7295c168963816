"""Fair judge slots: calls abandoned by every waiter are cancelled after a bounded grace, so fresh requests
are judged within their deadline; a waiter without a deadline keeps a shared call alive."""

from __future__ import annotations

import asyncio

from judge.backends.factory import build_backend
from judge.cache import MemoryCache
from judge.profiles import JudgeProfile
from judge.scorer import Scorer
from judge.verdicts import AxisStatus
from rubrics.schema import Rubric
from tests.judge.conftest import make_sample
from tests.support.openai_server import OpenAIServer, Slow


def _profile(server: OpenAIServer) -> JudgeProfile:
    return JudgeProfile.model_validate(
        {
            "name": "loop",
            "model": "judge-model",
            "base_url": server.url,
            "concurrency": 2,
            "timeout_s": 60,
            "max_retries": 0,
        }  # fmt: skip
    )


def _scorer(grace_s: float | None) -> Scorer:
    return Scorer(cache=MemoryCache(1000, 3600), sessions=None, backend_factory=build_backend, grace_s=grace_s)


async def test_after_stalled_requests_a_fresh_one_is_judged_within_its_deadline(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    stalled = 8
    openai_server.script(*[Slow(delay_s=30.0)] * stalled)
    scorer = _scorer(grace_s=0.2)
    profile = _profile(openai_server)
    try:
        batches = await asyncio.gather(
            *(
                scorer.score(tiny_rubric, profile, [make_sample(response=f"卡住的回答{i}")], deadline_s=0.2)
                for i in range(stalled)
            )  # fmt: skip
        )
        assert all(batch.items[0].timed_out for batch in batches)
        # Calls that never reached the server left their stalls in the script: the server answers at once now.
        openai_server.reset()
        fresh = await scorer.score(
            tiny_rubric, profile, [make_sample(response="新的回答：请尽快就医。")], deadline_s=10
        )
        verdict = fresh.items[0].verdict
        assert verdict is not None, "the fresh request was starved by abandoned calls"
        assert all(axis.status is AxisStatus.ok for axis in verdict.axes.values())
    finally:
        await scorer.aclose()


async def test_a_waiter_without_a_deadline_keeps_a_shared_call(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    openai_server.script(Slow(delay_s=0.8))
    scorer = _scorer(grace_s=0.1)
    profile = _profile(openai_server)
    sample = make_sample(response="同一个回答，两个请求在等。")
    try:
        hurried, patient = await asyncio.gather(
            scorer.score(tiny_rubric, profile, [sample], deadline_s=0.1),
            scorer.score(tiny_rubric, profile, [sample]),
        )
        assert hurried.items[0].timed_out
        assert patient.items[0].verdict is not None
        assert openai_server.calls == 1
    finally:
        await scorer.aclose()
