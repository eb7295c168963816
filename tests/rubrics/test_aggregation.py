"""Aggregation: pass/fail on integers, reward on expected scores, weights, gates, missing axes, length."""

from __future__ import annotations

import itertools
import math

import pytest
from pydantic import ValidationError

from rubrics.aggregation import Aggregate, aggregate, length_penalty
from rubrics.schema import LengthPenalty
from tests.rubrics.builders import axis, make_rubric

# Axes of the test rubric, in order: reasoning (cot), accuracy (response), safety (response).
ALL5 = {"reasoning": 5, "accuracy": 5, "safety": 5}


def minmax(mean: float) -> float:
    return (mean - 1) / 4


def test_all_fives_pass_with_reward_one() -> None:
    agg = aggregate(make_rubric(), ALL5)
    assert agg.passed is True
    assert agg.reward == 1.0
    assert agg.failing_axes == []
    assert agg.missing_axes == []
    assert agg.gated_by == []
    assert agg.reason is None
    assert agg.layers == {"cot": 5.0, "response": 5.0}
    assert agg.length_penalty == 0.0


def test_all_ones_give_reward_zero_and_fail_everywhere() -> None:
    agg = aggregate(make_rubric(), dict.fromkeys(ALL5, 1))
    assert agg.passed is False
    assert agg.reward == 0.0
    assert agg.failing_axes == ["reasoning", "accuracy", "safety"]


def test_a_four_fails_and_is_listed() -> None:
    agg = aggregate(make_rubric(), {**ALL5, "accuracy": 4})
    assert agg.passed is False
    assert agg.failing_axes == ["accuracy"]
    assert agg.reward == pytest.approx(minmax(14 / 3))
    assert agg.reason is None


def test_failing_axes_follow_rubric_order_not_input_order() -> None:
    agg = aggregate(make_rubric(), {"safety": 3, "accuracy": 5, "reasoning": 2})
    assert agg.failing_axes == ["reasoning", "safety"]


def test_per_axis_threshold_override() -> None:
    rubric = make_rubric(pass_policy={"per_axis": {"safety": 3}})
    assert aggregate(rubric, {**ALL5, "safety": 4}).passed is True
    assert aggregate(rubric, {**ALL5, "safety": 3}).failing_axes == ["safety"]
    assert aggregate(rubric, {**ALL5, "accuracy": 4}).failing_axes == ["accuracy"]


def test_threshold_is_strict() -> None:
    rubric = make_rubric(pass_policy={"threshold": 3})
    assert aggregate(rubric, dict.fromkeys(ALL5, 4)).passed is True
    assert aggregate(rubric, {**ALL5, "reasoning": 3}).passed is False


SAFETY_GATE = {"gates": [{"axis": "safety", "max_score": 2, "reward": 0.0}]}


def test_safety_two_gate_zeroes_the_reward() -> None:
    agg = aggregate(make_rubric(reward_policy=SAFETY_GATE), {**ALL5, "safety": 2})
    assert agg.reward == 0.0
    assert agg.gated_by == ["safety<=2"]
    assert agg.reason is not None
    assert "safety<=2" in agg.reason
    assert agg.passed is False


def test_gate_does_not_fire_above_its_score() -> None:
    agg = aggregate(make_rubric(reward_policy=SAFETY_GATE), {**ALL5, "safety": 3})
    assert agg.gated_by == []
    assert agg.reward == pytest.approx(minmax(13 / 3))


def test_gate_caps_but_never_raises_the_reward() -> None:
    rubric = make_rubric(reward_policy={"gates": [{"axis": "safety", "max_score": 2, "reward": 0.5}]})
    assert aggregate(rubric, {**ALL5, "safety": 2}).reward == 0.5
    assert aggregate(rubric, dict.fromkeys(ALL5, 1)).reward == 0.0


def test_gate_reads_the_integer_score_not_the_expected_one() -> None:
    rubric = make_rubric(reward_policy=SAFETY_GATE)
    fired = aggregate(rubric, {**ALL5, "safety": 2}, {"safety": 4.8})
    assert fired.gated_by == ["safety<=2"]
    assert fired.reward == 0.0
    quiet = aggregate(rubric, {**ALL5, "safety": 3}, {"safety": 1.2})
    assert quiet.gated_by == []
    assert quiet.reward == pytest.approx(minmax((5 + 5 + 1.2) / 3))


def test_several_gates_all_reported_lowest_cap_wins() -> None:
    rubric = make_rubric(
        reward_policy={
            "gates": [
                {"axis": "safety", "max_score": 3, "reward": 0.6},
                {"axis": "accuracy", "max_score": 2, "reward": 0.2},
            ]
        }
    )
    agg = aggregate(rubric, {"reasoning": 5, "accuracy": 2, "safety": 3})
    assert agg.gated_by == ["safety<=3", "accuracy<=2"]
    assert agg.reward == 0.2


def test_expected_scores_drive_reward_integers_drive_pass() -> None:
    rubric = make_rubric()
    agg = aggregate(rubric, ALL5, {"reasoning": 4.6, "accuracy": 4.9, "safety": None})
    assert agg.passed is True  # integers are all 5
    assert agg.reward == pytest.approx(minmax((4.6 + 4.9 + 5) / 3))
    assert agg.layers["cot"] == pytest.approx(4.6)
    failing = aggregate(rubric, {**ALL5, "accuracy": 4}, {"accuracy": 4.9})
    assert failing.passed is False  # the integer 4 fails even though E = 4.9
    assert failing.reward == pytest.approx(minmax((5 + 4.9 + 5) / 3))


def test_expected_ignored_when_policy_says_so() -> None:
    rubric = make_rubric(reward_policy={"use_expected": False})
    assert aggregate(rubric, ALL5, {"reasoning": 1.0}).reward == 1.0


def test_expected_of_a_missing_axis_does_not_count() -> None:
    agg = aggregate(make_rubric(), {**ALL5, "safety": None}, {"safety": 4.9})
    assert agg.missing_axes == ["safety"]
    assert agg.reward is None


def test_reward_policy_weights() -> None:
    scores = {"reasoning": 1, "accuracy": 5, "safety": 5}
    plain = aggregate(make_rubric(), scores)
    heavy = aggregate(make_rubric(reward_policy={"weights": {"safety": 2.0}}), scores)
    assert plain.reward == pytest.approx(minmax(11 / 3))
    assert heavy.reward == pytest.approx(minmax((1 + 5 + 2 * 5) / 4))
    assert heavy.layers["response"] == 5.0


def test_axis_weight_used_unless_policy_overrides_it() -> None:
    base = make_rubric()
    weighted_axes = [axis("reasoning", "cot", weight=3.0), *base.model_dump()["axes"][1:]]
    scores = {"reasoning": 1, "accuracy": 5, "safety": 5}
    assert aggregate(make_rubric(axes=weighted_axes), scores).reward == pytest.approx(minmax((3 + 5 + 5) / 5))
    overridden = make_rubric(axes=weighted_axes, reward_policy={"weights": {"reasoning": 1.0}})
    assert aggregate(overridden, scores).reward == pytest.approx(minmax(11 / 3))


def test_layer_weight_scales_its_axes() -> None:
    layers = make_rubric().model_dump()["layers"]
    layers[0]["weight"] = 2.0
    agg = aggregate(make_rubric(layers=layers), {"reasoning": 1, "accuracy": 5, "safety": 5})
    assert agg.reward == pytest.approx(minmax((2 * 1 + 5 + 5) / 4))
    assert agg.layers["cot"] == 1.0


def test_weighted_layer_means() -> None:
    rubric = make_rubric(reward_policy={"weights": {"safety": 2.0}})
    agg = aggregate(rubric, {"reasoning": 4, "accuracy": 5, "safety": 2})
    assert agg.layers == {"cot": 4.0, "response": pytest.approx((5 + 2 * 2) / 3)}


def test_zero_weight_axis_counts_for_pass_not_reward() -> None:
    rubric = make_rubric(reward_policy={"weights": {"reasoning": 0.0}})
    agg = aggregate(rubric, {**ALL5, "reasoning": 1})
    assert agg.reward == 1.0
    assert agg.passed is False
    assert agg.failing_axes == ["reasoning"]
    assert agg.layers["cot"] is None  # nothing with weight to average


def test_all_weights_zero_gives_no_reward() -> None:
    rubric = make_rubric(reward_policy={"weights": dict.fromkeys(ALL5, 0.0)})
    agg = aggregate(rubric, ALL5)
    assert agg.reward is None
    assert agg.passed is True
    assert agg.reason is not None
    assert "weight 0" in agg.reason


def test_normalise_none_keeps_the_likert_scale() -> None:
    rubric = make_rubric(reward_policy={"normalise": "none", **SAFETY_GATE})
    assert aggregate(rubric, ALL5).reward == 5.0
    assert aggregate(rubric, {"reasoning": 3, "accuracy": 4, "safety": 5}).reward == pytest.approx(4.0)
    # a gate's reward of 0.0 is the bottom of the scale, 1
    assert aggregate(rubric, {**ALL5, "safety": 1}).reward == 1.0


# --- missing axes -------------------------------------------------------------------------------


def test_missing_null_leaves_pass_and_reward_null() -> None:
    agg = aggregate(make_rubric(), {**ALL5, "safety": None})
    assert agg.passed is None
    assert agg.reward is None
    assert agg.missing_axes == ["safety"]
    assert agg.reason is not None
    assert "safety" in agg.reason
    assert agg.layers == {"cot": 5.0, "response": None}


def test_missing_key_absent_from_mapping_is_missing_too() -> None:
    agg = aggregate(make_rubric(), {"reasoning": 5, "accuracy": 5})
    assert agg.missing_axes == ["safety"]
    assert agg.reward is None


def test_missing_null_still_fails_when_a_scored_axis_fails() -> None:
    agg = aggregate(make_rubric(), {"reasoning": 2, "accuracy": 5, "safety": None})
    # the sample cannot pass whatever safety would have scored
    assert agg.passed is False
    assert agg.failing_axes == ["reasoning"]
    assert agg.reward is None


def test_missing_fail_floors_reward_and_fails() -> None:
    agg = aggregate(make_rubric(), {**ALL5, "accuracy": None}, on_missing="fail")
    assert agg.passed is False
    assert agg.reward == 0.0
    assert agg.missing_axes == ["accuracy"]
    assert agg.reason is not None
    assert "accuracy" in agg.reason
    assert agg.failing_axes == []


def test_missing_fail_floor_on_likert_scale_is_one() -> None:
    rubric = make_rubric(reward_policy={"normalise": "none"})
    assert aggregate(rubric, {**ALL5, "accuracy": None}, on_missing="fail").reward == 1.0


def test_missing_ignore_aggregates_the_scored_axes() -> None:
    agg = aggregate(make_rubric(), {"reasoning": 5, "accuracy": 3, "safety": None}, on_missing="ignore")
    assert agg.reward == pytest.approx(minmax(4.0))
    assert agg.passed is False
    assert agg.failing_axes == ["accuracy"]
    assert agg.missing_axes == ["safety"]
    assert agg.layers == {"cot": 5.0, "response": 3.0}
    assert agg.reason is not None
    assert "safety" in agg.reason


def test_missing_ignore_changes_the_reward_only_and_never_passes() -> None:
    # Issue 9: "ignore" used to pass a sample whose safety axis was never scored.
    agg = aggregate(make_rubric(), {"reasoning": 5, "accuracy": 5}, on_missing="ignore")
    assert agg.passed is False
    assert agg.reward == 1.0


def test_gate_on_a_missing_axis_cannot_fire() -> None:
    rubric = make_rubric(reward_policy=SAFETY_GATE)
    agg = aggregate(rubric, {"reasoning": 5, "accuracy": 5, "safety": None}, {"safety": 1.0}, on_missing="ignore")
    assert agg.gated_by == []
    assert agg.reward == 1.0


@pytest.mark.parametrize("policy", ["null", "ignore"])
def test_nothing_scored_gives_no_numbers(policy: str) -> None:
    agg = aggregate(make_rubric(), dict.fromkeys(ALL5, None), on_missing=policy)  # type: ignore[arg-type]
    assert agg.passed is None
    assert agg.reward is None
    assert agg.layers == {"cot": None, "response": None}
    assert agg.missing_axes == ["reasoning", "accuracy", "safety"]
    assert agg.reason is not None
    assert "no axis was scored" in agg.reason


def test_nothing_scored_under_fail_is_a_failure() -> None:
    agg = aggregate(make_rubric(), {}, on_missing="fail")
    assert agg.passed is False
    assert agg.reward == 0.0


# --- length penalty -----------------------------------------------------------------------------

PENALTY = {"length_penalty": {"free_chars": 1000, "per_1k_chars": 0.1, "max_penalty": 0.3}}


def test_length_penalty_subtracts_beyond_free_chars() -> None:
    rubric = make_rubric(reward_policy=PENALTY)
    agg = aggregate(rubric, ALL5, output_chars=3000)
    assert agg.length_penalty == pytest.approx(0.2)
    assert agg.reward == pytest.approx(0.8)
    assert aggregate(rubric, ALL5, output_chars=1000).reward == 1.0


def test_length_penalty_is_capped_and_reward_floored_at_zero() -> None:
    rubric = make_rubric(reward_policy=PENALTY)
    assert aggregate(rubric, ALL5, output_chars=1_000_000).reward == pytest.approx(0.7)
    low = aggregate(rubric, {"reasoning": 1, "accuracy": 1, "safety": 2}, output_chars=1_000_000)
    assert low.reward == 0.0


def test_no_length_penalty_without_length_or_policy() -> None:
    assert aggregate(make_rubric(reward_policy=PENALTY), ALL5).reward == 1.0
    assert aggregate(make_rubric(), ALL5, output_chars=10**7).reward == 1.0
    assert length_penalty(None, 10**7) == 0.0
    assert length_penalty(LengthPenalty(free_chars=0, per_1k_chars=0.5, max_penalty=1.0), 1000) == 0.5


# --- contract -----------------------------------------------------------------------------------


def test_exhaustive_scores_stay_in_range_and_pass_iff_all_above_four() -> None:
    rubric = make_rubric(reward_policy={"weights": {"safety": 2.0}, **SAFETY_GATE})
    for combo in itertools.product(range(1, 6), repeat=3):
        scores = dict(zip(ALL5, combo, strict=True))
        agg = aggregate(rubric, scores)
        assert agg.reward is not None
        assert 0.0 <= agg.reward <= 1.0
        assert agg.passed is all(s > 4 for s in combo)
        assert (agg.gated_by == ["safety<=2"]) is (scores["safety"] <= 2)


def test_keys_outside_the_rubric_are_ignored() -> None:
    assert aggregate(make_rubric(), {**ALL5, "bogus": 1}, {"bogus": 1.0}).reward == 1.0


@pytest.mark.parametrize("bad", [0, 6, True, 4.5, "5"])
def test_invalid_integer_scores_raise(bad: object) -> None:
    with pytest.raises(ValueError, match="reasoning"):
        aggregate(make_rubric(), {**ALL5, "reasoning": bad})  # type: ignore[dict-item]


@pytest.mark.parametrize("bad", [0.5, 5.5, math.nan, math.inf])
def test_invalid_expected_scores_raise(bad: float) -> None:
    with pytest.raises(ValueError, match="accuracy"):
        aggregate(make_rubric(), ALL5, {"accuracy": bad})


def test_aggregate_is_frozen() -> None:
    agg = aggregate(make_rubric(), ALL5)
    assert isinstance(agg, Aggregate)
    with pytest.raises(ValidationError):
        agg.reward = 0.5  # type: ignore[misc]
