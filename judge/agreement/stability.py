"""Judge stability: agreement of one judge profile with itself over repeated runs, and position effects in
group mode (how a response's scores move with its position in the group)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from judge.agreement.bootstrap import percentile_ci, resample_counts
from judge.agreement.errors import NotEnoughRatings
from judge.agreement.matrix import RatingMatrix
from judge.agreement.ratings import RatingLike
from judge.agreement.report import AgreementReport, Estimate, MaybeFloat
from judge.agreement.service import agreement_from_matrix
from rubrics.schema import Rubric

FloatArray = NDArray[np.float64]

# --- self-agreement ----------------------------------------------------------------------------------------------


class AxisStability(BaseModel):
    """One axis over repeated runs: how much the scores of the same sample move."""

    axis: str
    n_samples: int  # samples scored in at least two runs
    mean_sd: MaybeFloat = None  # mean over samples of the SD of their scores across runs
    unstable_share: MaybeFloat = None  # share of samples whose score differs between runs


class StabilityReport(BaseModel):
    """Self-agreement of one rater over ``runs``: the runs are compared as if they were raters."""

    rater: str
    runs: list[int]
    n_samples: int
    axes: list[AxisStability]
    # Share of samples whose sample-level pass decision (every axis above its threshold) flips between runs.
    pass_flip_share: MaybeFloat = None
    n_pass_samples: int
    agreement: AgreementReport


def run_rater(rater: str, run: int) -> str:
    """The name a run of a rater takes when runs are compared like raters."""
    return f"{rater}#run{run}"


def self_agreement(
    rows: Iterable[RatingLike],
    rubric: Rubric,
    rater: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
) -> StabilityReport:
    """Agreement of ``rater`` with itself over every run it has (``run`` 0..n-1 from re-scoring a set)."""
    mine = [r for r in rows if r.rater == rater]
    runs = sorted({r.run for r in mine})
    if len(runs) < 2:
        raise NotEnoughRatings(f"{rater!r} has {len(runs)} run(s); self-agreement needs two or more", field="rater")
    names = [run_rater(rater, run) for run in runs]
    matrix = RatingMatrix.from_columns(
        [r.sample_hash for r in mine],
        [run_rater(rater, r.run) for r in mine],
        [r.axis for r in mine],
        [r.score for r in mine],
        axes=rubric.axis_keys,
        raters=names,
    )
    agreement = agreement_from_matrix(matrix, rubric, n_boot=n_boot, seed=seed, ci_level=ci_level)
    cats = matrix.categories().astype(np.float64)
    cats[cats == 0] = np.nan
    axes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # samples with one run: NaN, left out below
        for a, key in enumerate(matrix.axes):
            scores = cats[a]
            repeated = (~np.isnan(scores)).sum(axis=1) >= 2
            sd = np.nanstd(scores[repeated], axis=1)
            spread = np.nanmax(scores[repeated], axis=1) - np.nanmin(scores[repeated], axis=1)
            count = int(repeated.sum())
            axes.append(
                AxisStability(
                    axis=key,
                    n_samples=count,
                    mean_sd=float(sd.mean()) if count else None,
                    unstable_share=float((spread > 0).mean()) if count else None,
                )
            )
    thresholds = np.array([rubric.pass_policy.threshold_for(key) for key in matrix.axes])
    scored: NDArray[np.bool_] = np.asarray(~np.isnan(cats).any(axis=0))  # samples × runs: every axis scored
    passing: NDArray[np.bool_] = np.asarray((np.nan_to_num(cats, nan=0.0) > thresholds[:, None, None]).all(axis=0))
    # A flip: among the runs that scored every axis, some pass the sample and some fail it.
    passes = np.where(scored, passing, False).sum(axis=1)
    runs_scored = scored.sum(axis=1)
    comparable = runs_scored >= 2
    flips = (passes[comparable] > 0) & (passes[comparable] < runs_scored[comparable])
    return StabilityReport(
        rater=rater,
        runs=runs,
        n_samples=matrix.n_samples,
        axes=axes,
        pass_flip_share=float(flips.mean()) if len(flips) else None,
        n_pass_samples=int(comparable.sum()),
        agreement=agreement,
    )


# --- position effects -------------------------------------------------------------------------------------------


class PositionRecord(Protocol):
    """A score given to a response at ``position`` (0-based) of a group judged together."""

    @property
    def sample_hash(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def axis(self) -> str: ...
    @property
    def score(self) -> float: ...


class PositionMean(BaseModel):
    position: int
    n: int
    mean: Estimate
    # Mean of (score - the same sample's mean score over all its positions): the position's own effect,
    # free of which responses happened to sit there. None when no sample was seen at two positions.
    shift: Estimate


class PositionEffect(BaseModel):
    """Scores by position on one axis (or ``overall``, every axis pooled) and tests of a trend."""

    axis: str
    n: int
    positions: list[PositionMean]
    spearman: MaybeFloat = None  # Spearman's rho of position vs score
    spearman_p: MaybeFloat = None
    kruskal_h: MaybeFloat = None  # Kruskal-Wallis H across positions
    kruskal_p: MaybeFloat = None
    shift_spearman: MaybeFloat = None  # rho of position vs within-sample shift
    shift_spearman_p: MaybeFloat = None


class PositionReport(BaseModel):
    n_groups: int
    n_boot: int
    ci_level: float
    axes: list[PositionEffect]
    overall: PositionEffect


def _tests(position: NDArray[np.int64], values: NDArray[np.float64]) -> tuple[float, float, float, float]:
    from scipy.stats import kruskal, spearmanr

    nan = float("nan")
    if len(values) < 3 or len(np.unique(position)) < 2:
        return nan, nan, nan, nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN is the answer
        rho = spearmanr(position, values)
        groups = [values[position == p] for p in np.unique(position)]
        try:
            kw = kruskal(*groups)
            h, p = float(kw.statistic), float(kw.pvalue)
        except ValueError:  # all values identical
            h, p = nan, nan
    return float(rho.statistic), float(rho.pvalue), h, p


def _effect(
    axis: str,
    group: NDArray[np.int64],
    position: NDArray[np.int64],
    score: NDArray[np.float64],
    shift: NDArray[np.float64],
    n_groups: int,
    n_boot: int,
    seed: int,
    ci_level: float,
) -> PositionEffect:
    positions = np.unique(position)
    has_shift = ~np.isnan(shift)
    # Per group and position: sums and counts, so that a bootstrap over groups is a matrix product.
    cell = group * len(positions) + np.searchsorted(positions, position)
    size = n_groups * len(positions)

    def per_group(
        values: NDArray[np.float64], mask: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        sums = np.bincount(cell[mask], weights=values[mask], minlength=size).reshape(n_groups, -1).astype(np.float64)
        counts = np.bincount(cell[mask], minlength=size).reshape(n_groups, -1).astype(np.float64)
        return sums, counts

    score_sums, score_counts = per_group(score, np.ones(len(score), dtype=bool))
    shift_sums, shift_counts = per_group(np.nan_to_num(shift), has_shift)

    def means(weights: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (
                (weights.T @ score_sums) / (weights.T @ score_counts),
                (weights.T @ shift_sums) / (weights.T @ shift_counts),
            )

    point_mean, point_shift = means(np.ones((n_groups, 1)))
    boot_mean, boot_shift = [], []
    if n_boot > 0:
        for counts in resample_counts(n_groups, n_boot, seed):
            m, s = means(counts.astype(np.float64))
            boot_mean.append(m)
            boot_shift.append(s)
    if boot_mean:
        mean_low, mean_high = percentile_ci(np.concatenate(boot_mean), ci_level)
        shift_low, shift_high = percentile_ci(np.concatenate(boot_shift), ci_level)
    else:
        mean_low = mean_high = shift_low = shift_high = np.full(len(positions), np.nan)
    rows = [
        PositionMean(
            position=int(p),
            n=int(score_counts[:, i].sum()),
            mean=Estimate(value=float(point_mean[0, i]), low=float(mean_low[i]), high=float(mean_high[i])),
            shift=Estimate(value=float(point_shift[0, i]), low=float(shift_low[i]), high=float(shift_high[i])),
        )
        for i, p in enumerate(positions)
    ]
    rho, rho_p, h, h_p = _tests(position, score)
    shift_rho, shift_p, _, _ = _tests(position[has_shift], shift[has_shift])
    return PositionEffect(
        axis=axis,
        n=len(score),
        positions=rows,
        spearman=rho,
        spearman_p=rho_p,
        kruskal_h=h,
        kruskal_p=h_p,
        shift_spearman=shift_rho,
        shift_spearman_p=shift_p,
    )


def position_effects(
    records: Sequence[PositionRecord],
    rubric: Rubric,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
) -> PositionReport:
    """Mean score and within-sample shift by position, per axis and pooled, with CIs by resampling groups.

    Run a set of groups several times with the responses shuffled: a sample then appears at several
    positions, and its shift isolates the position effect from the content of the responses.
    """
    known = set(rubric.axis_keys)
    records = [r for r in records if r.axis in known]
    if not records:
        raise NotEnoughRatings("no group-mode scores on this rubric's axes", field="records")
    group_code: dict[str, int] = {}
    groups = np.array([group_code.setdefault(r.group, len(group_code)) for r in records], dtype=np.int64)
    position = np.array([r.position for r in records], dtype=np.int64)
    score = np.array([r.score for r in records], dtype=np.float64)
    axis = np.array([r.axis for r in records], dtype=object)
    sample = np.array([f"{r.sample_hash}\x00{r.axis}" for r in records], dtype=object)
    # Within-sample shift: a sample's score minus its mean over all the positions it was seen at.
    _, sample_idx, seen = np.unique(sample, return_inverse=True, return_counts=True)
    sample_positions = np.zeros(len(seen))
    np.maximum.at(sample_positions, sample_idx, position)
    sample_min = np.full(len(seen), np.inf)
    np.minimum.at(sample_min, sample_idx, position)
    sample_mean = np.bincount(sample_idx, weights=score) / seen
    moved = (sample_positions > sample_min)[sample_idx]
    shift = np.where(moved, score - sample_mean[sample_idx], np.nan)
    n_groups = len(group_code)
    effects = []
    for key in rubric.axis_keys:
        mask = axis == key
        if mask.any():
            effects.append(
                _effect(key, groups[mask], position[mask], score[mask], shift[mask], n_groups, n_boot, seed, ci_level)
            )
    overall = _effect("overall", groups, position, score, shift, n_groups, n_boot, seed, ci_level)
    return PositionReport(n_groups=n_groups, n_boot=n_boot, ci_level=ci_level, axes=effects, overall=overall)
