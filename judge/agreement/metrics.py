"""Agreement metrics: library reference implementations and vectorised equivalents for the bootstrap.

The reference functions call scikit-learn, krippendorff, pingouin and scipy; they define what each metric
means and are tested against published worked examples. The vectorised functions compute the same numbers
from sufficient statistics (contingency tables, coincidence matrices, ANOVA moments) for a whole stack of
bootstrap resamples at once; tests check them for equality against the reference functions.
All functions return NaN where a metric is undefined (no variance, no overlap).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
AlphaLevel = Literal["nominal", "ordinal", "interval"]

# Metrics of a pair of raters, all functions of the pair's contingency table on the 1..5 scale.
PAIR_METRICS: tuple[str, ...] = (
    "qwk",
    "alpha_ordinal",
    "alpha_interval",
    "icc2_1",
    "icc2_k",
    "spearman",
    "kendall",
    "exact",
    "within_one",
    "mean_diff",
    "pass_kappa",
    "pass_f1",
    # Skewed scales (a pass line at 5): "all 5 but one 4" has exact agreement 0.95+ and QWK/α 0; Gwet's AC2
    # (ordinal weights) and PABAK (the pass decision) do not collapse there.
    "gwet_ac2",
    "pass_pabak",
)
# Metrics of a set of raters with missing data; the rest of a group's row is the mean over its pairs.
GROUP_METRICS: tuple[str, ...] = ("alpha_ordinal", "alpha_interval", "icc2_1", "icc2_k")
PASS_METRICS: tuple[str, ...] = ("pass_kappa", "pass_f1", "pass_pabak")


# --- reference implementations (libraries) ---------------------------------------------------------------------


def _pairs(a: ArrayLike, b: ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def qwk(a: ArrayLike, b: ArrayLike, labels: ArrayLike = (1, 2, 3, 4, 5)) -> float:
    """Quadratic-weighted Cohen's kappa of two raters (scikit-learn); pairs with a missing score are left out."""
    from sklearn.metrics import cohen_kappa_score

    x, y = _pairs(a, b)
    return float(cohen_kappa_score(x, y, labels=np.asarray(labels), weights="quadratic"))


def ordinal_weights(levels: int = 5) -> FloatArray:
    """Gwet's ordinal weights: 1 − C(|k−l|+1, 2) / max (irrCAC's ``ordinal`` weights; 1 on the diagonal)."""
    k = np.arange(levels)
    span = np.abs(k[:, None] - k[None, :]) + 1
    pairs = span * (span - 1) / 2
    return np.asarray(1.0 - pairs / pairs.max(), dtype=np.float64)


def gwet_ac2(a: ArrayLike, b: ArrayLike, levels: int = 5) -> float:
    """Gwet's AC2 of two raters with ordinal weights, from their 1..``levels`` scores (pairs with a gap left out).

    ``(pa − pe) / (1 − pe)`` with ``pa = Σ w_kl p_kl`` and ``pe = Σw / (q(q−1)) · Σ π_k (1 − π_k)``, π_k the
    mean of the two raters' marginal shares (Gwet 2014, Handbook of Inter-Rater Reliability, 4th ed., ch. 3 & 5).
    """
    x, y = _pairs(a, b)
    if len(x) == 0:
        return float("nan")
    table = np.zeros((levels, levels))
    np.add.at(table, (x.astype(int) - 1, y.astype(int) - 1), 1.0)
    w = ordinal_weights(levels)
    p = table / len(x)
    pa = float((w * p).sum())
    pi = (p.sum(axis=1) + p.sum(axis=0)) / 2
    pe = float(w.sum() / (levels * (levels - 1)) * (pi * (1 - pi)).sum())
    return (pa - pe) / (1 - pe) if pe < 1 else float("nan")


def pabak(a: ArrayLike, b: ArrayLike) -> float:
    """Prevalence-adjusted bias-adjusted kappa of two binary ratings: 2·p_o − 1 (Byrt, Bishop & Carlin 1993)."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return float(2 * np.mean(x == y) - 1) if len(x) else float("nan")


def cohen_kappa(a: ArrayLike, b: ArrayLike) -> float:
    """Unweighted Cohen's kappa (scikit-learn)."""
    from sklearn.metrics import cohen_kappa_score

    x, y = _pairs(a, b)
    return float(cohen_kappa_score(x, y))


def balanced_f1(truth: ArrayLike, predicted: ArrayLike) -> float:
    """Macro F1 over the pass and fail classes (HealthBench's meta-evaluation metric); a class absent from
    both raters is left out of the mean."""
    from sklearn.metrics import f1_score

    x, y = _pairs(truth, predicted)
    return float(f1_score(x.astype(bool), y.astype(bool), average="macro", labels=[False, True], zero_division=np.nan))


def krippendorff_alpha(
    data: ArrayLike, level: AlphaLevel = "ordinal", values: ArrayLike | None = (1, 2, 3, 4, 5)
) -> float:
    """Krippendorff's alpha (krippendorff package) of ``data``: units × raters, NaN where missing."""
    import krippendorff

    matrix = np.asarray(data, dtype=np.float64).T
    domain = None if values is None else np.asarray(values, dtype=np.float64)
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level, value_domain=domain))


def icc2(data: ArrayLike) -> tuple[float, float]:
    """ICC(2,1) and ICC(2,k) (pingouin; two-way random effects, absolute agreement) of ``data``: targets ×
    raters; targets with a missing rating are left out."""
    import pingouin

    pd = importlib.import_module("pandas")
    matrix = np.asarray(data, dtype=np.float64)
    n, k = matrix.shape
    frame = pd.DataFrame(
        {"target": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n), "score": matrix.ravel()}
    )
    with warnings.catch_warnings():
        # pingouin's own use of a pandas API that pandas 3 deprecates; nothing the caller can act on.
        warnings.filterwarnings("ignore", message="The inplace keyword")
        result = pingouin.intraclass_corr(frame, targets="target", raters="rater", ratings="score", nan_policy="omit")
    values = dict(zip(result["Type"], result["ICC"], strict=True))
    # pingouin >= 0.7 names them after McGraw & Wong (A,1)/(A,k); older releases after Shrout & Fleiss.
    single = values["ICC(A,1)"] if "ICC(A,1)" in values else values["ICC2"]
    average = values["ICC(A,k)"] if "ICC(A,k)" in values else values["ICC2k"]
    return float(single), float(average)


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman's rho with average ranks for ties (scipy)."""
    from scipy.stats import spearmanr

    x, y = _pairs(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input warns and returns NaN, which is what we report
        return float(spearmanr(x, y).statistic)


def kendall(a: ArrayLike, b: ArrayLike) -> float:
    """Kendall's tau-b (scipy)."""
    from scipy.stats import kendalltau

    x, y = _pairs(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(kendalltau(x, y).statistic)


def exact_agreement(a: ArrayLike, b: ArrayLike) -> float:
    x, y = _pairs(a, b)
    return float(np.mean(x == y)) if len(x) else float("nan")


def within_one(a: ArrayLike, b: ArrayLike) -> float:
    x, y = _pairs(a, b)
    return float(np.mean(np.abs(x - y) <= 1)) if len(x) else float("nan")


# --- sufficient statistics -------------------------------------------------------------------------------------


def contingency(a: ArrayLike, b: ArrayLike, levels: int = 5) -> NDArray[np.int64]:
    """levels × levels table of two raters' scores (1..levels); pairs with a missing score are left out."""
    x, y = _pairs(a, b)
    code = (x.astype(np.int64) - 1) * levels + (y.astype(np.int64) - 1)
    return np.bincount(code, minlength=levels * levels).reshape(levels, levels)


def coincidence(data: ArrayLike, levels: int = 5) -> FloatArray:
    """Krippendorff's coincidence matrix of units × raters data on 1..levels (NaN missing).

    A unit with m values adds ``n_c (n_k - [c == k]) / (m - 1)`` to cell (c, k); units with fewer than two
    values are not pairable and add nothing.
    """
    matrix = np.asarray(data, dtype=np.float64)
    counts = np.zeros((matrix.shape[0], levels), dtype=np.float64)
    for level in range(1, levels + 1):
        counts[:, level - 1] = (matrix == level).sum(axis=1)
    total: FloatArray = coincidence_from_counts(counts).sum(axis=0)
    return total


def coincidence_from_counts(counts: FloatArray) -> FloatArray:
    """Per-unit coincidence contributions (units × levels × levels) from per-unit value counts."""
    m = counts.sum(axis=-1)
    pairable = m >= 2
    scale = np.divide(1.0, m - 1, out=np.zeros_like(m), where=pairable)
    outer = counts[..., :, None] * counts[..., None, :]
    diag = np.arange(counts.shape[-1])
    outer[..., diag, diag] -= counts
    return np.asarray(outer * scale[..., None, None], dtype=np.float64)


def icc_moments(data: FloatArray, centre: float = 3.0) -> FloatArray:
    """Per-target ANOVA moments ``[1, sum, sum of squares, sum squared, x_1..x_k]`` of centred complete rows.

    Centring keeps the sums of squares small so that they stay exact in floating point.
    """
    x = data - centre
    s = x.sum(axis=-1)
    ones = np.ones_like(s)
    return np.asarray(np.concatenate([np.stack([ones, s, (x * x).sum(axis=-1), s * s], axis=-1), x], axis=-1))


# --- vectorised metrics ----------------------------------------------------------------------------------------


def _safe_div(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(np.isfinite(out) & (den != 0), out, np.nan)


def icc_from_moments(moments: FloatArray) -> tuple[FloatArray, FloatArray]:
    """ICC(2,1) and ICC(2,k) from summed :func:`icc_moments` (last axis ``4 + k``), for any leading shape."""
    m = np.asarray(moments, dtype=np.float64)
    k = m.shape[-1] - 4
    n, total, squares, row_sq = m[..., 0], m[..., 1], m[..., 2], m[..., 3]
    cols = m[..., 4:]
    with np.errstate(divide="ignore", invalid="ignore"):
        correction = total * total / (n * k)
        ss_total = squares - correction
        ss_rows = row_sq / k - correction
        ss_cols = (cols * cols).sum(axis=-1) / n - correction
        ss_error = ss_total - ss_rows - ss_cols
        ms_rows = ss_rows / (n - 1)
        ms_cols = ss_cols / (k - 1)
        ms_error = ss_error / ((n - 1) * (k - 1))
    single = _safe_div(ms_rows - ms_error, ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n)
    average = _safe_div(ms_rows - ms_error, ms_rows + (ms_cols - ms_error) / n)
    too_few = n < 2
    return np.where(too_few, np.nan, single), np.where(too_few, np.nan, average)


def alpha_from_coincidence(o: FloatArray, level: AlphaLevel, values: ArrayLike | None = None) -> FloatArray:
    """Krippendorff's alpha from coincidence matrices (..., c, c); ``values`` are the category values."""
    o = np.asarray(o, dtype=np.float64)
    c = o.shape[-1]
    v = np.arange(1, c + 1, dtype=np.float64) if values is None else np.asarray(values, dtype=np.float64)
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    if level == "nominal":
        delta = np.broadcast_to(1.0 - np.eye(c), o.shape)
    elif level == "interval":
        delta = np.broadcast_to((v[:, None] - v[None, :]) ** 2, o.shape)
    else:
        # Ordinal distance: (sum of n_g for g from c to k, minus (n_c + n_k) / 2) squared, i.e. the squared
        # difference of the categories' mid-cumulative frequencies.
        mid = np.cumsum(n_c, axis=-1) - n_c / 2
        delta = (mid[..., None, :] - mid[..., :, None]) ** 2
    observed = (o * delta).sum(axis=(-2, -1))
    expected = (n_c[..., :, None] * n_c[..., None, :] * delta).sum(axis=(-2, -1)) / (n - 1)
    return np.where(n > 1, 1.0 - _safe_div(observed, expected), np.nan)


def _table_icc_moments(t: FloatArray, v: FloatArray, centre: float) -> FloatArray:
    x = v - centre
    a, b = np.meshgrid(x, x, indexing="ij")
    cell = np.stack([np.ones_like(a), a + b, a * a + b * b, (a + b) ** 2, a, b], axis=-1)  # (c, c, 6)
    return np.asarray(np.einsum("...ij,ijf->...f", t, cell), dtype=np.float64)


def table_metrics(table: ArrayLike, threshold: float, values: ArrayLike | None = None) -> dict[str, FloatArray]:
    """Every pair metric from contingency tables (..., c, c): rows rater a (the reference), columns rater b.

    ``threshold``: a score passes when strictly above it (the rubric's pass policy).
    ``mean_diff`` is mean(b - a): positive when rater b scores higher.
    """
    t = np.asarray(table, dtype=np.float64)
    c = t.shape[-1]
    v = np.arange(1, c + 1, dtype=np.float64) if values is None else np.asarray(values, dtype=np.float64)
    n = t.sum(axis=(-2, -1))
    rows, cols = t.sum(axis=-1), t.sum(axis=-2)
    diff = v[None, :] - v[:, None]  # b - a for cell (a, b)
    out: dict[str, FloatArray] = {}

    weights = diff**2
    expected = rows[..., :, None] * cols[..., None, :]
    out["qwk"] = 1.0 - _safe_div((t * weights).sum(axis=(-2, -1)) * n, (expected * weights).sum(axis=(-2, -1)))

    pair_coincidence = t + np.swapaxes(t, -1, -2)
    out["alpha_ordinal"] = alpha_from_coincidence(pair_coincidence, "ordinal", v)
    out["alpha_interval"] = alpha_from_coincidence(pair_coincidence, "interval", v)
    out["icc2_1"], out["icc2_k"] = icc_from_moments(_table_icc_moments(t, v, float(v.mean())))

    # Spearman: Pearson correlation of average ranks; a category's average rank follows from the marginals.
    rank_a = np.cumsum(rows, axis=-1) - (rows - 1) / 2
    rank_b = np.cumsum(cols, axis=-1) - (cols - 1) / 2
    mean_rank = (n + 1) / 2
    cross = np.einsum("...ij,...i,...j->...", t, rank_a, rank_b)
    cov = _safe_div(cross, n) - mean_rank**2
    var_a = _safe_div((rows * rank_a**2).sum(axis=-1), n) - mean_rank**2
    var_b = _safe_div((cols * rank_b**2).sum(axis=-1), n) - mean_rank**2
    out["spearman"] = _safe_div(cov, np.sqrt(np.clip(var_a, 0, None) * np.clip(var_b, 0, None)))

    out["kendall"] = _kendall_tau_b(t, n, rows, cols)
    out["exact"] = _safe_div(np.trace(t, axis1=-2, axis2=-1), n)
    out["within_one"] = _safe_div((t * (np.abs(diff) <= 1)).sum(axis=(-2, -1)), n)
    out["mean_diff"] = _safe_div((t * diff).sum(axis=(-2, -1)), n)

    passing = v > threshold
    tp = t[..., passing, :][..., passing].sum(axis=(-2, -1))
    fn = t[..., passing, :][..., ~passing].sum(axis=(-2, -1))
    fp = t[..., ~passing, :][..., passing].sum(axis=(-2, -1))
    tn = t[..., ~passing, :][..., ~passing].sum(axis=(-2, -1))
    out["pass_kappa"], out["pass_f1"] = binary_metrics(tp, fn, fp, tn)
    out["pass_pabak"] = pabak_from_cells(tp, fn, fp, tn)

    # Gwet's AC2 with ordinal weights (see gwet_ac2).
    w = ordinal_weights(c)
    pa = _safe_div((t * w).sum(axis=(-2, -1)), n)
    pi = _safe_div(rows + cols, 2 * n[..., None])
    pe = w.sum() / (c * (c - 1)) * (pi * (1 - pi)).sum(axis=-1)
    out["gwet_ac2"] = np.where(n > 0, _safe_div(pa - pe, 1 - pe), np.nan)
    return out


def pabak_from_cells(tp: FloatArray, fn: FloatArray, fp: FloatArray, tn: FloatArray) -> FloatArray:
    """PABAK of a pass/fail decision from its 2 × 2 cells."""
    return 2 * _safe_div(tp + tn, tp + fn + fp + tn) - 1


def binary_metrics(tp: FloatArray, fn: FloatArray, fp: FloatArray, tn: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Cohen's kappa and balanced (macro) F1 of a pass/fail decision from its 2 × 2 cells (a is the truth)."""
    n = tp + fn + fp + tn
    p_observed = _safe_div(tp + tn, n)
    p_chance = _safe_div((tp + fn) * (tp + fp) + (tn + fp) * (tn + fn), n * n)
    kappa = _safe_div(p_observed - p_chance, 1.0 - p_chance)
    f1_pass = _safe_div(2 * tp, 2 * tp + fp + fn)
    f1_fail = _safe_div(2 * tn, 2 * tn + fp + fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # both classes undefined: NaN is the answer
        f1 = np.nanmean(np.stack([f1_pass, f1_fail]), axis=0)
    return kappa, np.where(n > 0, f1, np.nan)


def _kendall_tau_b(t: FloatArray, n: FloatArray, rows: FloatArray, cols: FloatArray) -> FloatArray:
    # after[..., i, j]: observations in rows > i and columns > j; before_cols: rows > i and columns < j.
    tail = np.flip(np.cumsum(np.cumsum(np.flip(t, axis=(-2, -1)), axis=-2), axis=-1), axis=(-2, -1))
    after = np.zeros_like(t)
    after[..., :-1, :-1] = tail[..., 1:, 1:]
    lower = np.flip(np.cumsum(np.flip(t, axis=-2), axis=-2), axis=-2)  # rows >= i
    lower = np.cumsum(lower, axis=-1)  # rows >= i, columns <= j
    before_cols = np.zeros_like(t)
    before_cols[..., :-1, 1:] = lower[..., 1:, :-1]
    concordant = (t * after).sum(axis=(-2, -1))
    discordant = (t * before_cols).sum(axis=(-2, -1))
    pairs = n * (n - 1) / 2
    ties_a = (rows * (rows - 1) / 2).sum(axis=-1)
    ties_b = (cols * (cols - 1) / 2).sum(axis=-1)
    return _safe_div(
        concordant - discordant, np.sqrt(np.clip(pairs - ties_a, 0, None) * np.clip(pairs - ties_b, 0, None))
    )
