"""One sample's result as callers see it (the API's JSON and the CLI's JSONL lines)."""

from __future__ import annotations

from typing import Any, Literal

from judge.integrity.facts import level_distributions, output_facts
from judge.scoring.batch import ScoredItem
from judge.verdicts import AxisStatus
from rubrics.aggregation import aggregate
from rubrics.schema import Rubric

OnMissing = Literal["null", "fail", "ignore"]

DEADLINE_ERROR = "deadline exceeded; the judge call goes on and its verdict will be cached"


def render_result(
    item: ScoredItem, rubric: Rubric, *, include_rationale: bool = True, on_missing: OnMissing = "null"
) -> dict[str, Any]:
    """Per-axis scores and statuses, layer scores, reward, pass/fail, failing axes, cache flag."""
    axes: dict[str, dict[str, Any]] = {}
    scores: dict[str, int | None] = {}
    expected: dict[str, float | None] = {}
    verdict_id: str | None
    error: str | None
    distributions: dict[str, dict[int, float] | None] = {}
    raw = item.raw
    if raw is not None:
        # A cache hit: its JSON already has the axes' serialised shape, so no Verdict is built.
        verdict_id, error = raw["id"], raw.get("error")
        for key, result in raw["axes"].items():
            out = {
                "score": result.get("score"),
                "expected": result.get("expected"),
                "status": result["status"],
                "score_method": result.get("score_method", "integer"),
            }
            if result.get("mass") is not None:
                out["mass"] = result["mass"]
            if result.get("error") is not None:
                out["error"] = result["error"]
            if include_rationale:
                out["rationale"] = result.get("rationale")
            axes[key] = out
            scores[key] = out["score"]
            expected[key] = out["expected"]
        distributions = level_distributions(raw["axes"])
    elif (verdict := item.verdict) is not None:
        verdict_id, error = verdict.id, verdict.error
        for key, axis in verdict.axes.items():
            out = {
                "score": axis.score,
                "expected": axis.expected,
                "status": axis.status.value,
                "score_method": axis.score_method,
            }
            if axis.mass is not None:
                out["mass"] = axis.mass
            if axis.error is not None:
                out["error"] = axis.error
            if include_rationale:
                out["rationale"] = axis.rationale
            axes[key] = out
            scores[key] = axis.score
            expected[key] = axis.expected
        distributions = level_distributions(verdict.axes)
    else:
        verdict_id, error = None, DEADLINE_ERROR
        for key in rubric.axis_keys:
            axes[key] = {"score": None, "expected": None, "status": AxisStatus.timeout.value, "error": DEADLINE_ERROR}
            if include_rationale:
                axes[key]["rationale"] = None
            scores[key] = None
            expected[key] = None
    sample = item.sample
    agg = aggregate(
        rubric,
        scores,
        expected,
        on_missing=on_missing,
        distributions=distributions,
        **output_facts(sample, rubric).aggregation_kwargs(),
    )
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
        "verdict_id": verdict_id,
        "clipped": sample.clipped,
        "error": error,
    }
