"""Aggregation that an optimising policy cannot game (issue 9): soft gates, original lengths, truncation,
integrity gates, unscored axes. The property test checks monotonicity: moving the judge's belief up on any
axis never lowers the reward."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rubrics.aggregation import aggregate
from rubrics.registry import RubricRegistry
from rubrics.schema import IntegrityGate, LengthPenalty, Rubric

PRMED_1 = RubricRegistry().resolve("prmed@1")
PRMED_2 = RubricRegistry().resolve("prmed@2")
LEVELS = (1, 2, 3, 4, 5)


def _expected(distribution: dict[int, float]) -> float:
    # Clamped as judge.backends.openai.logprobs does: float sums may land a hair outside 1..5.
    return min(5.0, max(1.0, sum(level * p for level, p in distribution.items()) / sum(distribution.values())))


def _reward(rubric: Rubric, distributions: dict[str, dict[int, float]]) -> float:
    """The reward of a verdict whose integers are each axis's most likely level."""
    scores = {key: max(d, key=lambda level: (d[level], -level)) for key, d in distributions.items()}
    expected = {key: _expected(d) for key, d in distributions.items()}
    reward = aggregate(rubric, scores, expected, distributions=distributions).reward
    assert reward is not None
    return reward


def test_the_issues_example_is_now_monotonic() -> None:
    # Issue 9: safety 2 with E 2.6 gave 0.0, safety 3 with E 2.4 gave 0.913.
    rest = {key: {5: 1.0} for key in PRMED_1.axis_keys if key != "safety"}
    believed_safer = _reward(PRMED_1, {**rest, "safety": {2: 0.5, 3: 0.4, 4: 0.1}})  # E 2.6, integer 2
    believed_worse = _reward(PRMED_1, {**rest, "safety": {3: 0.45, 2: 0.35, 1: 0.2}})  # E 2.25, integer 3
    assert believed_worse < believed_safer
    # Soft: the reward is weighed by P(safety > 2), never cut to 0 by a coin flip of the integer.
    assert 0.0 < believed_safer < 1.0


def test_without_a_distribution_the_gate_stays_hard() -> None:
    scores = dict.fromkeys(PRMED_1.axis_keys, 5) | {"safety": 2}
    assert aggregate(PRMED_1, scores).reward == 0.0
    assert aggregate(PRMED_1, scores, dict.fromkeys(PRMED_1.axis_keys, 4.9) | {"safety": 2.6}).reward == 0.0


_distribution = st.dictionaries(st.sampled_from(LEVELS), st.floats(0.01, 1.0), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    rubric=st.sampled_from([PRMED_1, PRMED_2]),
    beliefs=st.fixed_dictionaries({key: _distribution for key in PRMED_1.axis_keys}),
    axis=st.sampled_from(PRMED_1.axis_keys),
    source=st.sampled_from(LEVELS[:-1]),
    step=st.integers(1, 4),
    share=st.floats(0.05, 1.0),
)
def test_moving_probability_mass_up_never_lowers_the_reward(
    rubric: Rubric, beliefs: dict[str, dict[int, float]], axis: str, source: int, step: int, share: float
) -> None:
    before = {key: dict(d) for key, d in beliefs.items()}
    moved = before[axis].get(source, 0.0) * share
    if moved <= 0:
        return
    after = {key: dict(d) for key, d in before.items()}
    after[axis][source] -= moved
    target = min(5, source + step)
    after[axis][target] = after[axis].get(target, 0.0) + moved
    after[axis] = {level: p for level, p in after[axis].items() if p > 1e-12}
    integers = {key: 3 for key in rubric.axis_keys}  # the integers are held: only the belief moves

    def reward(distributions: dict[str, dict[int, float]]) -> float:
        expected = {key: _expected(d) for key, d in distributions.items()}
        value = aggregate(rubric, integers, expected, distributions=distributions).reward
        assert value is not None
        return value

    assert reward(after) >= reward(before) - 1e-9


def test_penalties_use_the_original_length_and_truncation_costs() -> None:
    rubric = PRMED_1.model_copy(
        update={
            "reward_policy": PRMED_1.reward_policy.model_copy(update={"length_penalty": LengthPenalty(free_chars=1000)})
        }
    )
    scores = dict.fromkeys(rubric.axis_keys, 5)
    whole = aggregate(rubric, scores, output_chars=20_000)
    clipped = aggregate(rubric, scores, output_chars=20_000, truncated=True)
    assert whole.reward == pytest.approx(0.5) and clipped.reward == pytest.approx(0.5)  # max(0.5 length, 0.25)
    short_clipped = aggregate(rubric, scores, output_chars=1_200, truncated=True)
    assert short_clipped.reward == pytest.approx(0.75) and short_clipped.length_penalty == pytest.approx(0.25)

    fail = rubric.model_copy(update={"reward_policy": rubric.reward_policy.model_copy(update={"on_truncated": "fail"})})
    failed = aggregate(fail, scores, output_chars=1_200, truncated=True)
    assert (failed.reward, failed.passed) == (0.0, False)
    ignore = rubric.model_copy(
        update={"reward_policy": rubric.reward_policy.model_copy(update={"on_truncated": "ignore"})}
    )
    assert aggregate(ignore, scores, output_chars=1_200, truncated=True).reward == pytest.approx(0.99)


def test_integrity_gates_fail_the_sample_and_cap_the_reward() -> None:
    scores = dict.fromkeys(PRMED_2.axis_keys, 5)
    clean = aggregate(PRMED_2, scores)
    assert clean.passed is True and clean.reward == 1.0
    for flag, label in (("language_mismatch", "language"), ("keyword_padding", "padding")):
        gated = aggregate(PRMED_2, scores, **{flag: True})
        assert (gated.reward, gated.passed) == (0.0, False) and label in gated.gated_by
    # prmed@1 has no integrity gates: the flags change nothing there.
    assert aggregate(PRMED_1, dict.fromkeys(PRMED_1.axis_keys, 5), language_mismatch=True).passed is True
    half = PRMED_2.model_copy(
        update={"reward_policy": PRMED_2.reward_policy.model_copy(update={"language_gate": IntegrityGate(reward=0.5)})}
    )
    assert aggregate(half, scores, language_mismatch=True).reward == 0.5


def test_an_unscored_axis_never_passes_whatever_on_missing_says() -> None:
    scores: dict[str, int | None] = dict.fromkeys(PRMED_1.axis_keys, 5) | {"safety": None}
    for on_missing in ("null", "fail", "ignore"):
        assert aggregate(PRMED_1, scores, on_missing=on_missing).passed is not True  # type: ignore[arg-type]
    ignored = aggregate(PRMED_1, scores, on_missing="ignore")
    assert ignored.reward == 1.0 and ignored.passed is False
