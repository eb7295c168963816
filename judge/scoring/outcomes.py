"""A judge outcome made whole before it becomes a verdict: every rubric axis present, reward and pass applied."""

from __future__ import annotations

from typing import Any

from judge.integrity.facts import level_distributions, output_facts
from judge.samples import Sample
from judge.verdicts import AxisResult, AxisStatus, JudgeOutcome
from rubrics.aggregation import aggregate
from rubrics.schema import Rubric


def outcome_summary(rubric: Rubric, outcome: JudgeOutcome, sample: Sample) -> dict[str, Any]:
    """Reward and pass under the rubric's own policy, as stored with the verdict."""
    agg = aggregate(
        rubric,
        {k: a.score for k, a in outcome.axes.items()},
        {k: a.expected for k, a in outcome.axes.items()},
        distributions=level_distributions(outcome.axes),
        **output_facts(sample, rubric).aggregation_kwargs(),
    )
    return {"reward": agg.reward, "passed": agg.passed}


def complete_axes(outcome: JudgeOutcome, rubric: Rubric) -> JudgeOutcome:
    """Every rubric axis gets a result: one a backend left out is a parse error, never a score."""
    keys = rubric.axis_keys
    missing = [k for k in keys if k not in outcome.axes]
    expected = set(keys)
    extra = [k for k in outcome.axes if k not in expected]
    if not missing and not extra:
        return outcome
    axes = {k: outcome.axes[k] for k in rubric.axis_keys if k in outcome.axes}
    for k in missing:
        axes[k] = AxisResult.failed(AxisStatus.parse_error, "the judge returned no result for this axis")
    ordered = {k: axes[k] for k in rubric.axis_keys}
    return outcome.model_copy(update={"axes": ordered})
