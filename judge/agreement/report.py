"""The agreement report: a JSON model, PNG figures, one self-contained HTML page and a terminal table."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

OVERALL = "overall"


def _finite_or_none(value: object) -> object:
    # JSON has no NaN: an undefined metric is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


MaybeFloat = Annotated[float | None, BeforeValidator(_finite_or_none)]


class Estimate(BaseModel):
    """A point estimate with its bootstrap percentile interval; None where undefined."""

    model_config = ConfigDict(frozen=True)

    value: MaybeFloat = None
    low: MaybeFloat = None
    high: MaybeFloat = None


class AxisInfo(BaseModel):
    key: str
    layer: str
    title_zh: str
    title_en: str
    threshold: float


class PairAxis(BaseModel):
    """Two raters on one axis (or ``overall``): metrics and the 5 × 5 confusion matrix (rows rater a)."""

    axis: str
    n: int
    metrics: dict[str, Estimate]
    confusion: list[list[int]]


class PairResult(BaseModel):
    """Two raters on every axis; ``overall`` averages the axes except for the pass metrics, which judge the
    sample-level decision (every axis above its threshold) on samples both raters scored on every axis."""

    rater_a: str
    rater_b: str
    axes: list[PairAxis]
    overall: PairAxis
    pass_confusion: list[list[int]]
    n_pass_samples: int


class GroupAxis(BaseModel):
    """All selected raters on one axis (or ``overall``): alpha over pairable samples, ICC over samples every
    rater scored, and the mean over pairs of the pair metrics."""

    axis: str
    n_units: int
    n_complete: int
    metrics: dict[str, Estimate]


class RaterMean(BaseModel):
    rater: str
    axis: str
    n: int
    mean: MaybeFloat = None


class AgreementReport(BaseModel):
    """Agreement of a set of raters under one rubric, per axis and overall, with bootstrap CIs."""

    rubric_ref: str
    rubric_hash: str
    raters: list[str]
    axes: list[AxisInfo]
    n_samples: int
    n_boot: int
    seed: int
    ci_level: float
    group: list[GroupAxis]
    group_overall: GroupAxis
    pairs: list[PairResult]
    rater_means: list[RaterMean]
    dropped_rows: int = 0
    notes: list[str] = Field(default_factory=list)

    def group_axis(self, axis: str) -> GroupAxis:
        if axis == OVERALL:
            return self.group_overall
        return next(g for g in self.group if g.axis == axis)

    def pair(self, rater_a: str, rater_b: str) -> PairResult:
        for pair in self.pairs:
            if {pair.rater_a, pair.rater_b} == {rater_a, rater_b}:
                return pair
        raise KeyError((rater_a, rater_b))
