"""Agreement of a set of raters under a rubric: every metric per axis and overall, with bootstrap CIs.

All metrics are functions of sums over samples (contingency tables per pair, a coincidence matrix and ANOVA
moments per axis), so a block of bootstrap resamples is one sparse product of sample counts with the
samples' profiles, and the metrics are then computed for the whole block at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from judge.agreement import metrics
from judge.agreement.bootstrap import percentile_ci, resample_counts
from judge.agreement.errors import NotEnoughRatings
from judge.agreement.matrix import LEVELS, Profiles, RatingMatrix, profiles
from judge.agreement.ratings import RatingLike, expand_raters
from judge.agreement.report import (
    OVERALL,
    AgreementReport,
    AxisInfo,
    Estimate,
    GroupAxis,
    PairAxis,
    PairResult,
    RaterMean,
)
from rubrics.schema import Axis, Rubric

FloatArray = NDArray[np.float64]
PAIR_METRICS = metrics.PAIR_METRICS
GROUP_METRICS = metrics.GROUP_METRICS + tuple(m for m in PAIR_METRICS if m not in metrics.GROUP_METRICS)


@dataclass
class _AxisBlock:
    """One axis's profiles and the linear maps from profile weights to its sufficient statistics."""

    profiles: Profiles
    pair_map: sp.csr_matrix  # (pairs * 25) × profiles: pair contingency tables
    coincidence: sp.csr_matrix  # 25 × profiles: coincidence-matrix contributions
    icc: sp.csr_matrix  # (4 + raters) × profiles: ANOVA moments, zero for profiles with a missing rating
    offset: int


def _pair_map(table: NDArray[np.int8], pairs: list[tuple[int, int]], levels: int) -> sp.csr_matrix:
    """Sparse map from profile weights to the pairs' contingency tables (levels × levels per pair)."""
    rows, cols = [], []
    size = levels * levels
    for p, (i, j) in enumerate(pairs):
        a, b = table[:, i].astype(np.int64), table[:, j].astype(np.int64)
        both = np.flatnonzero((a > 0) & (b > 0))
        rows.append(p * size + (a[both] - 1) * levels + (b[both] - 1))
        cols.append(both)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix(
        (np.ones(len(r), dtype=np.float32), (r, c)), shape=(len(pairs) * size, len(table)), dtype=np.float32
    )


def _axis_block(prof: Profiles, pairs: list[tuple[int, int]], offset: int) -> _AxisBlock:
    table = prof.table
    counts = np.stack([(table == level).sum(axis=1) for level in range(1, LEVELS + 1)], axis=1).astype(np.float64)
    coincidence = metrics.coincidence_from_counts(counts).reshape(len(table), -1)
    complete = (table > 0).all(axis=1)
    icc = metrics.icc_moments(table.astype(np.float64), centre=(LEVELS + 1) / 2)
    icc[~complete] = 0.0
    # Sparse products throughout: single-threaded C loops, where a multi-threaded BLAS on a busy machine was
    # measured 40 times slower for these thin matrices.
    return _AxisBlock(prof, _pair_map(table, pairs, LEVELS), sp.csr_matrix(coincidence.T), sp.csr_matrix(icc.T), offset)


def _sample_pass(cats: NDArray[np.int8], thresholds: Sequence[float]) -> NDArray[np.int8]:
    """Per sample and rater: 0 when an axis is unscored, 1 fail, 2 pass (every axis above its threshold)."""
    scored = (cats > 0).all(axis=0)
    passing = np.ones(cats.shape[1:], dtype=bool)
    for a, threshold in enumerate(thresholds):
        passing &= cats[a] > threshold
    return np.where(scored, np.where(passing, 2, 1), 0).astype(np.int8)


def _evaluate(
    weights: NDArray[np.float32],
    stacked: sp.csr_matrix,
    blocks: list[_AxisBlock],
    pass_block: tuple[Profiles, sp.csr_matrix, int],
    thresholds: Sequence[float],
    n_pairs: int,
) -> tuple[dict[str, FloatArray], dict[str, FloatArray], dict[str, FloatArray], NDArray[np.float64]]:
    """Metrics for a block of resamples (``weights``: samples × b); also returns the pair tables."""
    b = weights.shape[1]
    profile_weights = stacked @ weights  # all profiles of all axes × b (exact: integer counts < 2**24)
    n_axes = len(blocks)
    pair_out = {m: np.empty((b, n_pairs, n_axes)) for m in PAIR_METRICS}
    group_out = {m: np.empty((b, n_axes)) for m in metrics.GROUP_METRICS}
    tables = np.empty((b, n_pairs, n_axes, LEVELS, LEVELS))
    for a, block in enumerate(blocks):
        w = profile_weights[block.offset : block.offset + block.profiles.size]
        t = np.asarray(block.pair_map @ w, dtype=np.float64).reshape(n_pairs, LEVELS, LEVELS, b)
        t = np.moveaxis(t, -1, 0)
        tables[:, :, a] = t
        for name, value in metrics.table_metrics(t, thresholds[a]).items():
            pair_out[name][:, :, a] = value
        w64 = w.astype(np.float64)
        o = np.asarray(block.coincidence @ w64).T.reshape(b, LEVELS, LEVELS)
        group_out["alpha_ordinal"][:, a] = metrics.alpha_from_coincidence(o, "ordinal")
        group_out["alpha_interval"][:, a] = metrics.alpha_from_coincidence(o, "interval")
        icc21, icc2k = metrics.icc_from_moments(np.asarray(block.icc @ w64).T)
        group_out["icc2_1"][:, a], group_out["icc2_k"][:, a] = icc21, icc2k
    prof, pass_map, offset = pass_block
    w = profile_weights[offset : offset + prof.size]
    t2 = np.moveaxis(np.asarray(pass_map @ w, dtype=np.float64).reshape(n_pairs, 2, 2, b), -1, 0)
    # Category 1 is fail, 2 pass; rows are rater a (the reference).
    cells = (t2[..., 1, 1], t2[..., 1, 0], t2[..., 0, 1], t2[..., 0, 0])
    kappa, f1 = metrics.binary_metrics(*cells)
    pabak = metrics.pabak_from_cells(*cells)
    return pair_out, group_out, {"pass_kappa": kappa, "pass_f1": f1, "pass_pabak": pabak}, tables


def _nanmean(values: NDArray[np.floating], axis: int) -> NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined everywhere stays NaN
        return np.asarray(np.nanmean(values, axis=axis), dtype=np.float64)


def _estimates(values: NDArray[np.floating], level: float) -> list[Estimate] | Estimate:
    """Estimates from (1 + B) × … values: row 0 the point estimate, the rest resamples."""
    point = np.asarray(values[0], dtype=np.float64)
    if values.shape[0] > 1:
        low, high = percentile_ci(values[1:], level)
    else:
        low = high = np.full(point.shape, np.nan)
    if point.ndim == 0:
        return Estimate(value=float(point), low=float(low), high=float(high))
    return [Estimate(value=float(v), low=float(lo), high=float(hi)) for v, lo, hi in zip(point, low, high, strict=True)]


def _column(values: NDArray[np.floating], level: float) -> list[Estimate]:
    out = _estimates(values, level)
    assert isinstance(out, list)
    return out


def _single(values: NDArray[np.floating], level: float) -> Estimate:
    out = _estimates(values, level)
    assert isinstance(out, Estimate)
    return out


def agreement_from_matrix(
    matrix: RatingMatrix,
    rubric: Rubric,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    pass_threshold: float | None = None,
) -> AgreementReport:
    """Every metric for the raters of ``matrix`` (axes in rubric order); see :func:`compute_agreement`."""
    if len(matrix.raters) < 2:
        raise NotEnoughRatings("agreement needs at least two raters", field="raters")
    if matrix.n_samples == 0:
        raise NotEnoughRatings("no ratings by the selected raters under this rubric", field="raters")
    axes = [rubric.axis(key) for key in matrix.axes]
    thresholds = [
        pass_threshold if pass_threshold is not None else rubric.pass_policy.threshold_for(a.key) for a in axes
    ]
    cats = matrix.categories()
    n_raters, n_axes, n = len(matrix.raters), len(axes), matrix.n_samples
    pairs = list(combinations(range(n_raters), 2))

    blocks: list[_AxisBlock] = []
    offset = 0
    for a in range(n_axes):
        blocks.append(_axis_block(profiles(cats[a]), pairs, offset))
        offset += blocks[-1].profiles.size
    pass_prof = profiles(_sample_pass(cats, thresholds), levels=2)
    pass_map = _pair_map(pass_prof.table, pairs, 2)
    pass_block = (pass_prof, pass_map, offset)
    offset += pass_prof.size
    inverses = [blk.profiles.inverse + blk.offset for blk in blocks] + [pass_prof.inverse + pass_block[2]]
    # samples × (profiles of every axis): one nonzero per sample and axis.
    stacked = sp.csr_matrix(
        (
            np.ones(n * len(inverses), dtype=np.float32),
            (np.concatenate(inverses), np.tile(np.arange(n), len(inverses))),
        ),
        shape=(offset, n),
    )

    total = 1 + n_boot
    pair_vals = {m: np.empty((total, len(pairs), n_axes), dtype=np.float64) for m in PAIR_METRICS}
    group_vals = {m: np.empty((total, n_axes), dtype=np.float64) for m in metrics.GROUP_METRICS}
    pass_vals = {m: np.empty((total, len(pairs)), dtype=np.float64) for m in metrics.PASS_METRICS}

    def store(start: int, out: tuple[dict[str, FloatArray], dict[str, FloatArray], dict[str, FloatArray]]) -> int:
        p_out, g_out, s_out = out
        b = int(next(iter(p_out.values())).shape[0])
        for name, value in p_out.items():
            pair_vals[name][start : start + b] = value
        for name, value in g_out.items():
            group_vals[name][start : start + b] = value
        for name, value in s_out.items():
            pass_vals[name][start : start + b] = value
        return start + b

    point = _evaluate(np.ones((n, 1), dtype=np.float32), stacked, blocks, pass_block, thresholds, len(pairs))
    tables = point[3][0]  # pairs × axes × 5 × 5
    position = store(0, point[:3])
    for counts in resample_counts(n, n_boot, seed):
        position = store(position, _evaluate(counts, stacked, blocks, pass_block, thresholds, len(pairs))[:3])

    # Point-estimate tables for the sample-level pass decision.
    pass_weights = np.bincount(pass_prof.inverse, minlength=pass_prof.size).astype(np.float32)
    pass_tables = np.asarray(pass_map @ pass_weights).reshape(len(pairs), 2, 2)

    return _assemble(
        matrix, rubric, axes, thresholds, pairs, blocks, cats, tables, pass_tables,
        pair_vals, group_vals, pass_vals, n_boot=n_boot, seed=seed, ci_level=ci_level,
    )  # fmt: skip


def _assemble(
    matrix: RatingMatrix,
    rubric: Rubric,
    axes: list[Axis],
    thresholds: list[float],
    pairs: list[tuple[int, int]],
    blocks: list[_AxisBlock],
    cats: NDArray[np.int8],
    tables: FloatArray,
    pass_tables: FloatArray,
    pair_vals: dict[str, FloatArray],
    group_vals: dict[str, FloatArray],
    pass_vals: dict[str, FloatArray],
    *,
    n_boot: int,
    seed: int,
    ci_level: float,
) -> AgreementReport:
    level = ci_level
    axis_keys = list(matrix.axes)
    pair_results: list[PairResult] = []
    for p, (i, j) in enumerate(pairs):
        per_metric = {m: _column(pair_vals[m][:, p, :], level) for m in PAIR_METRICS}
        axis_rows = [
            PairAxis(
                axis=key,
                n=int(tables[p, a].sum()),
                metrics={m: per_metric[m][a] for m in PAIR_METRICS},
                confusion=tables[p, a].astype(int).tolist(),
            )
            for a, key in enumerate(axis_keys)
        ]
        overall_metrics = {
            m: _single(_nanmean(pair_vals[m][:, p, :], axis=1), level)
            for m in PAIR_METRICS
            if m not in metrics.PASS_METRICS
        }
        overall_metrics.update({m: _single(pass_vals[m][:, p], level) for m in metrics.PASS_METRICS})
        pair_results.append(
            PairResult(
                rater_a=matrix.raters[i],
                rater_b=matrix.raters[j],
                axes=axis_rows,
                overall=PairAxis(
                    axis=OVERALL,
                    n=int(tables[p].sum()),
                    metrics=overall_metrics,
                    confusion=tables[p].sum(axis=0).astype(int).tolist(),
                ),
                pass_confusion=pass_tables[p].astype(int).tolist(),
                n_pass_samples=int(pass_tables[p].sum()),
            )
        )

    # The group's own metrics, then the mean over pairs of each pair metric (pass: the sample-level decision).
    group_axis_values: dict[str, NDArray[np.floating]] = dict(group_vals)
    for m in PAIR_METRICS:
        if m not in group_axis_values:
            group_axis_values[m] = _nanmean(pair_vals[m], axis=1)
    group_rows: list[GroupAxis] = []
    columns = {m: _column(v, level) for m, v in group_axis_values.items()}
    for a, key in enumerate(axis_keys):
        present = (cats[a] > 0).sum(axis=1)
        group_rows.append(
            GroupAxis(
                axis=key,
                n_units=int((present >= 2).sum()),
                n_complete=int((present == len(matrix.raters)).sum()),
                metrics={m: columns[m][a] for m in GROUP_METRICS},
            )
        )
    overall_values = {m: _nanmean(v, axis=1) for m, v in group_axis_values.items() if m not in metrics.PASS_METRICS}
    overall_values.update({m: _nanmean(pass_vals[m], axis=1) for m in metrics.PASS_METRICS})
    scored_all = (cats > 0).sum(axis=2)  # axes × samples: raters per (axis, sample)
    group_overall = GroupAxis(
        axis=OVERALL,
        n_units=int((scored_all >= 2).sum()),
        n_complete=int((scored_all == len(matrix.raters)).sum()),
        metrics={m: _single(overall_values[m], level) for m in GROUP_METRICS},
    )

    means: list[RaterMean] = []
    for r, rater in enumerate(matrix.raters):
        for a, key in enumerate(axis_keys):
            column = cats[a][:, r]
            scored = column > 0
            count = int(scored.sum())
            means.append(
                RaterMean(rater=rater, axis=key, n=count, mean=float(column[scored].mean()) if count else None)
            )

    infos = [
        AxisInfo(key=ax.key, layer=ax.layer, title_zh=ax.title.zh, title_en=ax.title.en, threshold=threshold)
        for ax, threshold in zip(axes, thresholds, strict=True)
    ]
    notes = [
        "overall: mean over axes, except pass_kappa and pass_f1, which judge the sample-level pass decision "
        "(every axis above its threshold) on samples both raters scored on every axis",
        "group metrics other than alpha and ICC are means over rater pairs",
        "ICC(2,1) and ICC(2,k) use samples scored by every rater; alpha uses samples scored by at least two",
        f"{ci_level:.0%} percentile intervals from {n_boot} bootstrap resamples of samples (seed {seed})",
    ]
    return AgreementReport(
        rubric_ref=rubric.ref,
        rubric_hash=rubric.content_hash,
        raters=list(matrix.raters),
        axes=infos,
        n_samples=matrix.n_samples,
        n_boot=n_boot,
        seed=seed,
        ci_level=ci_level,
        group=group_rows,
        group_overall=group_overall,
        pairs=pair_results,
        rater_means=means,
        dropped_rows=matrix.dropped,
        notes=notes,
    )


def compute_agreement(
    rows: Iterable[RatingLike],
    rubric: Rubric,
    raters: str | Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    pass_threshold: float | None = None,
    only_run: int | None = None,
) -> AgreementReport:
    """Agreement of ``raters`` (names or patterns such as ``human:*``) on ``rows`` under ``rubric``.

    Scores are rounded to the rubric's 1..5 levels; each (sample, rater, axis) uses its lowest run unless
    ``only_run`` is given. The pass threshold comes from the rubric's pass policy unless ``pass_threshold``
    overrides it. Intervals are percentile intervals over ``n_boot`` resamples of samples (0: none).
    """
    items = rows if isinstance(rows, Sequence) else list(rows)
    selected = expand_raters(raters, {r.rater for r in items})
    matrix = RatingMatrix.from_rows(items, axes=rubric.axis_keys, raters=selected, only_run=only_run)
    return agreement_from_matrix(
        matrix, rubric, n_boot=n_boot, seed=seed, ci_level=ci_level, pass_threshold=pass_threshold
    )
