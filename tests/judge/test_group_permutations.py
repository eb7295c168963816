"""Group mode over several display orders (issue 9, exploit 7): a judge's position bias averages out.

A judge that favours the first candidate would otherwise reward whichever response the seeded shuffle puts
first, for ever (the shuffle is fixed for a given set of responses). With ``permutations: k`` each group is
judged in k distinct orders; each sample's scores are averaged and the score at each position is kept.
"""

from __future__ import annotations

from typing import Any

from judge.backends.factory import build_backend
from judge.backends.openai.group_prompts import group_order, group_orders
from judge.cache import MemoryCache
from judge.profiles import JudgeProfile
from judge.scorer import Scorer
from judge.scoring.groups import average_outcomes
from judge.verdicts import AxisResult, AxisStatus, JudgeOutcome, Usage
from rubrics.schema import Rubric
from tests.judge.conftest import make_sample
from tests.support.openai_server import ChatRequest, OpenAIServer
from tests.support.openai_server import Verdict as Answer


def _first_is_favoured(request: ChatRequest) -> dict[str, int]:
    """A position-biased judge: candidate A gets 5 on every axis, every other candidate 3."""
    return {label: 5 if label == "A" else 3 for label in request.candidate_labels}


def _profile(server: OpenAIServer, **overrides: Any) -> JudgeProfile:
    fields: dict[str, Any] = {
        "name": "perm-loop", "model": "m", "base_url": server.url, "mode": "group", "timeout_s": 5, "max_retries": 1,
        **overrides,
    }  # fmt: skip
    return JudgeProfile.model_validate(fields)


def test_orders_are_distinct_seeded_and_start_with_the_single_order() -> None:
    hashes = [make_sample(response=f"回答{i}：请尽快就医。").hash for i in range(5)]
    orders = group_orders(hashes, 4)
    assert len(orders) == 4 and len({tuple(o) for o in orders}) == 4
    assert orders[0] == group_order(hashes) and orders[1] == orders[0][::-1]
    assert all(sorted(o) == list(range(5)) for o in orders)
    assert group_orders(hashes, 4) == orders  # seeded by content: reproducible
    assert group_orders(hashes[:1], 3) == [[0]]  # one sample has one order
    assert len(group_orders(hashes[:2], 5)) == 2


async def test_a_position_biased_judge_cannot_favour_a_response(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    openai_server.default = Answer(by_candidate=_first_is_favoured)
    samples = [make_sample(response=f"回答{i}：胸闷气短请尽快到心内科就诊。") for i in range(2)]
    scorer = Scorer(cache=MemoryCache(100, 60), sessions=None, backend_factory=build_backend)
    try:
        single = await scorer.score_groups(tiny_rubric, _profile(openai_server, permutations=1), [samples])
        averaged = await scorer.score_groups(tiny_rubric, _profile(openai_server, name="perm-2"), [samples])
    finally:
        await scorer.aclose()
    one = [item.verdict.axes["safety"].score for item in single.items if item.verdict is not None]
    assert sorted(one) == [3, 5]  # one order: the response shown first wins
    verdicts = [item.verdict for item in averaged.items if item.verdict is not None]
    assert [v.axes["safety"].score for v in verdicts] == [4, 4]  # (5 + 3) / 2 for both
    assert all(v.axes["safety"].by_position == {1: 5, 2: 3} for v in verdicts)
    assert averaged.usage.calls == 2  # k calls per group, reported


def test_averaging_keeps_failures_and_never_invents_a_score(tiny_rubric: Rubric) -> None:
    ok = JudgeOutcome(
        axes={k: AxisResult(score=4, expected=4.2, mass=0.9, probabilities={4: 0.8, 5: 0.2}, status=AxisStatus.ok)
              for k in tiny_rubric.axis_keys},
        usage=Usage(calls=1, prompt_tokens=10),
    )  # fmt: skip
    failed = JudgeOutcome.all_failed(tiny_rubric.axis_keys, AxisStatus.parse_error, "坏答案", Usage(calls=1))
    merged = average_outcomes([(1, ok), (2, failed)], tiny_rubric)
    assert merged.axes["safety"].score == 4 and merged.axes["safety"].by_position == {1: 4}
    assert merged.usage.calls == 2
    both_failed = average_outcomes([(1, failed), (2, failed)], tiny_rubric)
    assert all(a.score is None and a.status is AxisStatus.parse_error for a in both_failed.axes.values())
