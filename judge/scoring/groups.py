"""Group mode's planning and averaging: which samples share one judge call, and one score over display orders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from judge.profiles import JudgeProfile
from judge.samples import Sample, content_hash
from judge.scoring.keys import group_cache_key, group_composition
from judge.verdicts import AxisResult, AxisStatus, JudgeOutcome, Usage
from rubrics.schema import Rubric


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """One group-mode judge call: distinct samples sharing a conversation, and their cache keys by sample hash."""

    indices: list[int]
    samples: list[Sample]
    composition: str
    keys: dict[str, str]

    @property
    def call_key(self) -> str:
        # Every key depends on the composition (and rubric and profile), so the least one names the call
        # whatever order the samples came in.
        return min(self.keys.values())


def plan_groups(
    rubric: Rubric, profile: JudgeProfile, groups: Sequence[Sequence[Sample]], flat: Sequence[Sample]
) -> tuple[list[GroupPlan], dict[int, GroupPlan]]:
    """One plan per (group, conversation), and the plan of each index into ``flat`` (the groups flattened)."""
    plans: list[GroupPlan] = []
    plan_of: dict[int, GroupPlan] = {}
    start = 0
    for group in groups:
        by_context: dict[str, list[int]] = {}
        for offset, sample in enumerate(group):
            by_context.setdefault(context_hash(sample), []).append(start + offset)
        start += len(group)
        for indices in by_context.values():
            distinct = list({flat[i].hash: flat[i] for i in indices}.values())
            composition = group_composition(distinct)
            keys = {s.hash: group_cache_key(rubric, profile, composition, s) for s in distinct}
            plan = GroupPlan(indices, distinct, composition, keys)
            plans.append(plan)
            plan_of.update(dict.fromkeys(indices, plan))
    return plans, plan_of


def context_hash(sample: Sample) -> str:
    """What the samples of one group call must share: the conversation and the reference."""
    return content_hash({"messages": sample.canonical()["messages"], "reference": sample.reference})


def average_outcomes(runs: Sequence[tuple[int, JudgeOutcome]], rubric: Rubric) -> JudgeOutcome:
    """One sample's outcome over the display orders it was judged in: ``(position, outcome)`` per order.

    Per axis, over the orders where it was scored: the integer score is the rounded mean (halves up), the
    expected score and mass the means (when every such order gave one), the level distribution the mean
    distribution; ``by_position`` keeps each order's integer. An axis scored in no order keeps the first
    order's failure. Usage adds up over the orders. A single order is returned as it is.
    """
    if len(runs) == 1:
        return runs[0][1]
    usage = Usage()
    for _, outcome in runs:
        usage = usage.add(outcome.usage)
    axes: dict[str, AxisResult] = {}
    for key in rubric.axis_keys:
        ok = [(position, outcome.axes[key]) for position, outcome in runs if outcome.axes[key].status is AxisStatus.ok]
        if not ok:
            axes[key] = runs[0][1].axes[key]
            continue
        scores = [axis.score for _, axis in ok if axis.score is not None]
        mean = sum(scores) / len(scores)
        expected = [axis.expected for _, axis in ok]
        masses = [axis.mass for _, axis in ok]
        distributions = [axis.probabilities for _, axis in ok]
        averaged: dict[int, float] | None = None
        if all(d for d in distributions):
            averaged = {
                level: sum((d or {}).get(level, 0.0) for d in distributions) / len(distributions)
                for level in range(1, 6)
            }
            averaged = {level: p for level, p in averaged.items() if p > 0}
        axes[key] = AxisResult(
            score=int(mean + 0.5),
            expected=sum(e for e in expected if e is not None) / len(expected)
            if all(e is not None for e in expected)
            else None,
            mass=sum(m for m in masses if m is not None) / len(masses) if all(m is not None for m in masses) else None,
            probabilities=averaged,
            status=AxisStatus.ok,
            rationale=ok[0][1].rationale,
            score_method=ok[0][1].score_method,
            by_position={position: axis.score for position, axis in ok if axis.score is not None},
        )
    errors = list(dict.fromkeys(outcome.error for _, outcome in runs if outcome.error))
    return JudgeOutcome(
        axes=axes,
        usage=usage,
        error="; ".join(errors) if errors and not all(a.status is AxisStatus.ok for a in axes.values()) else None,
    )
