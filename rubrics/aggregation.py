"""Axis scores -> layer scores, reward, pass/fail and failing axes, under a rubric's policies.

Pure and deterministic. A number is never made from nothing: a missing axis makes the result
null (or, if the caller asks, a failure at the reward floor), and a layer or reward with nothing
to average is None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rubrics.schema import HardGate, LengthPenalty, Rubric

__all__ = ["Aggregate", "OnMissing", "aggregate", "length_penalty"]

OnMissing = Literal["null", "fail", "ignore"]

_MIN, _MAX = 1, 5


class Aggregate(BaseModel):
    """What one sample's axis scores add up to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Weighted mean of the axis values used for the reward, on the axes' 1..5 scale; None without data.
    layers: dict[str, float | None]
    # On [0, 1] with minmax normalisation, on [1, 5] with "none"; None when it cannot be computed.
    reward: float | None
    # None when undecidable (an axis is missing and every scored axis passes).
    passed: bool | None
    failing_axes: list[str]
    missing_axes: list[str]
    gated_by: list[str]
    reason: str | None
    # The length penalty on the [0, 1] scale, as the rubric's LengthPenalty computes it for output_chars
    # (raised to the rubric's truncation penalty for a truncated output under on_truncated: penalise).
    length_penalty: float = 0.0


def aggregate(
    rubric: Rubric,
    scores: Mapping[str, int | None],
    expected: Mapping[str, float | None] | None = None,
    *,
    on_missing: OnMissing = "null",
    output_chars: int | None = None,
    truncated: bool = False,
    language_mismatch: bool = False,
    keyword_padding: bool = False,
    distributions: Mapping[str, Mapping[int, float] | None] | None = None,
) -> Aggregate:
    """Aggregate integer axis scores (and optional expected scores) under ``rubric``'s pass and reward policies.

    Pass/fail always uses the integer scores, strictly above the threshold, and needs every axis scored.
    The reward uses the expected score of an axis where one is given and ``reward_policy.use_expected`` is
    on; a gate on such an axis is soft when its level ``distributions`` (level -> probability) are given:
    ``reward × (1 − P(axis ≤ gate level))`` for a gate to 0, so the reward never falls when the judge's
    belief moves up. Keys that are not axes of the rubric are ignored. ``on_missing`` says what an axis
    without a score does to the reward: ``null`` leaves it None, ``fail`` fails the sample at the reward
    floor, ``ignore`` aggregates the scored axes only (the sample still does not pass).

    ``output_chars`` is the output's length as the policy wrote it (before any clipping), ``truncated``
    says it was cut before judging (``reward_policy.on_truncated``), ``language_mismatch`` that the
    response is not in the patient's language (``reward_policy.language_gate``), ``keyword_padding``
    that the CoT is padded with the rubric's axis titles (``reward_policy.padding_gate``).
    """
    plan = _plan(rubric)
    # map() over the plan's keys: these keys are built for every item of every batch, cache hits included.
    score_key = tuple(map(scores.get, plan.axis_keys))
    use_expected = expected is not None and plan.use_expected
    expected_key = tuple(map(expected.get, plan.axis_keys)) if expected is not None and use_expected else None
    dist_key = (
        tuple(map(_dist_key, map(distributions.get, plan.axis_keys)))
        if distributions is not None and use_expected
        else None
    )
    penalty = length_penalty(rubric.reward_policy.length_penalty, output_chars)
    kwargs = {
        "on_missing": on_missing,
        "output_chars": output_chars,
        "truncated": truncated,
        "language_mismatch": language_mismatch,
        "keyword_padding": keyword_padding,
        "distributions": distributions,
    }
    # Cached RL batches aggregate the same verdicts again and again; the result is a pure function of
    # these inputs. bools are kept out because True == 1 would share a key with a valid score.
    if bool in set(map(type, score_key)):
        return _compute(rubric, scores, expected, **kwargs)  # type: ignore[arg-type]
    flags = (truncated, language_mismatch, keyword_padding)
    key = (rubric.content_hash, score_key, expected_key, dist_key, on_missing, penalty, flags)
    hit = _MEMO.get(key)
    if hit is None:
        hit = _compute(rubric, scores, expected, **kwargs)  # type: ignore[arg-type]
        if len(_MEMO) >= _MAX_MEMO:
            _MEMO.clear()
        _MEMO[key] = hit
    return hit


def _dist_key(distribution: Mapping[int, float] | None) -> tuple[tuple[int, float], ...] | None:
    return tuple(sorted(distribution.items())) if distribution else None


_MemoKey = tuple[
    str,
    tuple[int | None, ...],
    tuple[float | None, ...] | None,
    tuple[tuple[tuple[int, float], ...] | None, ...] | None,
    str,
    float,
    tuple[bool, bool, bool],
]
_MEMO: dict[_MemoKey, Aggregate] = {}
# Enough for the working set of repeated RL batches (a few thousand items); each entry is ~2 KB, and a
# long bulk job with all-distinct scores must not grow a worker (bench/README.md, issue 4).
_MAX_MEMO = 8_192


def _compute(
    rubric: Rubric,
    scores: Mapping[str, int | None],
    expected: Mapping[str, float | None] | None = None,
    *,
    on_missing: OnMissing = "null",
    output_chars: int | None = None,
    truncated: bool = False,
    language_mismatch: bool = False,
    keyword_padding: bool = False,
    distributions: Mapping[str, Mapping[int, float] | None] | None = None,
) -> Aggregate:
    plan = _plan(rubric)
    policy = rubric.reward_policy
    scored: dict[str, int] = {}
    missing: list[str] = []
    for key in plan.axis_keys:
        score = scores.get(key)
        if score is None:
            missing.append(key)
        else:
            scored[key] = _check_score(key, score)

    values: dict[str, float] = {}
    # Axes whose reward value is an expected score with a level distribution: their gates are soft.
    soft: dict[str, Mapping[int, float]] = {}
    for key, score in scored.items():
        value = expected.get(key) if expected is not None and plan.use_expected else None
        values[key] = _check_expected(key, value) if value is not None else float(score)
        distribution = distributions.get(key) if distributions is not None and value is not None else None
        if distribution:
            soft[key] = distribution

    weights = plan.weights
    thresholds = plan.thresholds
    failing = [key for key, score in scored.items() if score <= thresholds[key]]
    # Hard gates fire on the integer; soft ones weigh the reward by the probability of the gated levels.
    fired = [
        gate
        for gate in plan.gates
        if gate.axis in scored and gate.axis not in soft and scored[gate.axis] <= gate.max_score
    ]
    soft_gates = [(gate, _at_or_below(soft[gate.axis], gate.max_score)) for gate in plan.gates if gate.axis in soft]
    penalty = length_penalty(policy.length_penalty, output_chars)
    if truncated and policy.on_truncated == "penalise":
        penalty = max(penalty, policy.truncation_penalty)
    gate_labels = [_gate_label(gate) for gate in fired]
    gate_labels += [f"{_gate_label(gate)} (p={p:.2f})" for gate, p in soft_gates if p >= 0.005]
    # Integrity gates (judge.integrity): name, gate, the reason shown.
    integrity = [
        (name, gate, why)
        for name, gate, hit, why in (
            ("language", policy.language_gate, language_mismatch, "the response is not in the patient's language"),
            ("padding", policy.padding_gate, keyword_padding, "the CoT is padded with the rubric's axis titles"),
        )
        if hit and gate is not None
    ]
    gate_labels += [name for name, _, _ in integrity]

    # A partial layer mean would pass for a full one, so only "ignore" averages a layer with a gap.
    partial = on_missing == "ignore"
    missing_set = set(missing)
    layers: dict[str, float | None] = {}
    for layer_key, keys in plan.layers:
        if not partial and not missing_set.isdisjoint(keys):
            layers[layer_key] = None
        else:
            used = [key for key in keys if key in values]
            layers[layer_key] = _weighted_mean({k: values[k] for k in used}, weights)

    def result(reward: float | None, passed: bool | None, reasons: list[str]) -> Aggregate:
        # Built without re-validation: every field is constructed above from checked inputs, and this
        # runs for every item of every cached RL batch.
        return Aggregate.model_construct(
            layers=layers,
            reward=reward,
            passed=passed,
            failing_axes=failing,
            missing_axes=missing,
            gated_by=gate_labels,
            reason="; ".join(reasons) or None,
            length_penalty=penalty,
        )

    low, span = (0.0, 1.0) if policy.normalise == "minmax" else (float(_MIN), float(_MAX - _MIN))
    reasons: list[str] = []
    if truncated and policy.on_truncated == "fail":
        return result(low, False, ["the output was cut before judging and on_truncated is fail"])
    if missing:
        names = ", ".join(missing)
        if on_missing == "fail":
            return result(low, False, [f"missing axes counted as a failure: {names}"])
        if on_missing == "ignore" and scored:
            reasons.append(
                f"missing axes ignored for the reward ({len(scored)} of {len(rubric.axes)} scored): {names}; "
                "an unscored axis never passes"
            )
        else:
            # A scored axis at or below its threshold fails the sample whatever the missing ones say.
            passed = False if failing else None
            what = "reward is null" if failing else "pass and reward are null"
            reason = f"missing axes: {names}; {what}" if scored else f"no axis was scored; {what}"
            return result(None, passed, [reason])

    # A sample passes only when every axis was scored (on_missing changes the reward, never this).
    passed = not failing and not missing and not integrity
    mean = _weighted_mean({k: values[k] for k in scored}, weights)
    if mean is None:
        return result(None, passed, [*reasons, "every scored axis has weight 0; reward is null"])
    reward = (mean - _MIN) / (_MAX - _MIN) if policy.normalise == "minmax" else mean
    for gate in fired:
        # Gate rewards are on the [0, 1] scale; map them onto the reward's own scale.
        reward = min(reward, low + span * gate.reward)
        reasons.append(f"gate {_gate_label(gate)} fired: reward capped at {gate.reward:g}")
    for gate, p in soft_gates:
        # The expected reward over the judge's belief: capped with probability p, as is otherwise. Increasing
        # in the reward and decreasing in p, so moving mass up on any axis never lowers it.
        reward = (1.0 - p) * reward + p * min(reward, low + span * gate.reward)
    for _, integrity_gate, why in integrity:
        if integrity_gate is not None:
            reward = min(reward, low + span * integrity_gate.reward)
            reasons.append(f"{why}: reward capped at {integrity_gate.reward:g}")
    if truncated and policy.on_truncated == "penalise":
        reasons.append(f"the output was cut before judging: penalty {penalty:g}")
    if penalty:
        reward -= span * penalty
    reward = min(max(reward, low), low + span)
    return result(reward, passed, reasons)


def _at_or_below(distribution: Mapping[int, float], level: float) -> float:
    """P(score ≤ level) under a level distribution (normalised here, so any positive weights will do)."""
    total = math.fsum(p for p in distribution.values() if p > 0)
    if total <= 0:
        return 0.0
    return min(1.0, math.fsum(p for lvl, p in distribution.items() if lvl <= level and p > 0) / total)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What aggregation needs from a rubric, computed once per rubric content."""

    axis_keys: tuple[str, ...]
    use_expected: bool
    weights: dict[str, float]
    thresholds: dict[str, float]
    layers: tuple[tuple[str, tuple[str, ...]], ...]
    gates: tuple[HardGate, ...]


_PLANS: dict[str, _Plan] = {}
_MAX_PLANS = 1024


def _plan(rubric: Rubric) -> _Plan:
    plan = _PLANS.get(rubric.content_hash)
    if plan is not None:
        return plan
    policy = rubric.reward_policy
    layer_weight = {layer.key: layer.weight for layer in rubric.layers}
    plan = _Plan(
        axis_keys=tuple(axis.key for axis in rubric.axes),
        use_expected=policy.use_expected,
        # The layer's weight scales its axes' weights, so a rubric can weigh layers without touching axes.
        weights={
            axis.key: layer_weight[axis.layer] * policy.weights.get(axis.key, axis.weight) for axis in rubric.axes
        },
        thresholds={axis.key: rubric.pass_policy.threshold_for(axis.key) for axis in rubric.axes},
        layers=tuple(
            (layer.key, tuple(axis.key for axis in rubric.axes if axis.layer == layer.key)) for layer in rubric.layers
        ),
        gates=tuple(policy.gates),
    )
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[rubric.content_hash] = plan
    return plan


def length_penalty(policy: LengthPenalty | None, output_chars: int | None) -> float:
    """The penalty on the [0, 1] scale for ``output_chars`` characters: 0.0 without a policy or a length."""
    if policy is None or output_chars is None:
        return 0.0
    over = max(0, output_chars - policy.free_chars)
    return min(policy.max_penalty, policy.per_1k_chars * over / 1000)


def _weighted_mean(values: Mapping[str, float], weights: Mapping[str, float]) -> float | None:
    total = math.fsum(weights[k] for k in values)
    if total <= 0:
        return None
    mean = math.fsum(weights[k] * values[k] for k in values) / total
    # fsum keeps the error tiny, but a reward of 1.0000000000000002 must not escape the scale.
    return min(max(mean, float(_MIN)), float(_MAX))


def _gate_label(gate: HardGate) -> str:
    return f"{gate.axis}<={gate.max_score:g}"


def _check_score(key: str, score: int) -> int:
    if isinstance(score, bool) or not isinstance(score, int) or not _MIN <= score <= _MAX:
        raise ValueError(f"axis {key!r}: score must be an integer in {_MIN}..{_MAX}, got {score!r}")
    return score


def _check_expected(key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not _MIN <= value <= _MAX:
        raise ValueError(f"axis {key!r}: expected score must be a number in [{_MIN}, {_MAX}], got {value!r}")
    return float(value)
