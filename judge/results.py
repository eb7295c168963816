"""One sample's result as callers see it (the API's JSON and the CLI's JSONL lines)."""

from __future__ import annotations

from typing import Any, Literal

from judge.scorer import ScoredItem
from judge.verdicts import AxisStatus
from rubrics.aggregation import aggregate
from rubrics.schema import Rubric

OnMissing = Literal["null", "fail", "ignore"]

DEADLINE_ERROR = "deadline exceeded; the judge call goes on and its verdict will be cached"


def render_result(
    item: ScoredItem, rubric: Rubric, *, include_rationale: bool = True, on_missing: OnMissing = "null"
) -> dict[str, Any]:
    """Per-axis scores and statuses, layer scores, reward, pass/fail, failing axes, cache flag."""
    verdict = item.verdict
    axes: dict[str, dict[str, Any]] = {}
    scores: dict[str, int | None] = {}
    expected: dict[str, float | None] = {}
    if verdict is None:
        for key in rubric.axis_keys:
            axes[key] = {"score": None, "expected": None, "status": AxisStatus.timeout.value, "error": DEADLINE_ERROR}
            if include_rationale:
                axes[key]["rationale"] = None
            scores[key] = None
            expected[key] = None
    else:
        for key, result in verdict.axes.items():
            out: dict[str, Any] = {
                "score": result.score,
                "expected": result.expected,
                "status": result.status.value,
                "score_method": result.score_method,
            }
            if result.mass is not None:
                out["mass"] = result.mass
            if result.error is not None:
                out["error"] = result.error
            if include_rationale:
                out["rationale"] = result.rationale
            axes[key] = out
            scores[key] = result.score
            expected[key] = result.expected
    sample = item.sample
    agg = aggregate(
        rubric,
        scores,
        expected,
        on_missing=on_missing,
        output_chars=len(sample.reasoning) + len(sample.response),
    )
    error = DEADLINE_ERROR if verdict is None else verdict.error
    return {
        "id": sample.id,
        "sample_hash": sample.hash,
        "axes": axes,
        "layers": agg.layers,
        "reward": agg.reward,
        "passed": agg.passed,
        "failing_axes": agg.failing_axes,
        "missing_axes": agg.missing_axes,
        "gated_by": agg.gated_by,
        "reason": agg.reason,
        "cached": item.cached,
        "verdict_id": None if verdict is None else verdict.id,
        "clipped": sample.clipped,
        "error": error,
    }
