"""Bootstrap: seeded resamples, percentile intervals, equality with a plain index bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from judge.agreement import metrics as m
from judge.agreement.bootstrap import bootstrap, percentile_ci, resample_counts
from judge.agreement.matrix import RatingMatrix
from judge.agreement.report import Estimate
from judge.agreement.service import agreement_from_matrix
from rubrics.schema import Rubric
from tests.judge.agreement.conftest import make_rubric, synthetic_scores


def test_resample_counts_are_seeded_and_independent_of_block_size() -> None:
    one = np.concatenate(list(resample_counts(60, 50, seed=3, block=50)), axis=1)
    blocks = np.concatenate(list(resample_counts(60, 50, seed=3, block=7)), axis=1)
    other = np.concatenate(list(resample_counts(60, 50, seed=4)), axis=1)
    assert one.shape == (60, 50)
    np.testing.assert_array_equal(one, blocks)
    assert not np.array_equal(one, other)
    np.testing.assert_array_equal(one.sum(axis=0), 60)


def test_percentile_ci_of_a_mean_contains_it_and_leaves_out_undefined() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 1.0, 400)
    means = bootstrap(lambda w: (x @ w) / w.sum(axis=0), len(x), 500, seed=1)
    low, high = percentile_ci(means)
    assert low < x.mean() < high
    assert high - low == pytest.approx(2 * 1.96 / np.sqrt(400), rel=0.2)
    mostly_nan = np.full((100, 1), np.nan)
    mostly_nan[:10] = 1.0
    assert np.isnan(percentile_ci(mostly_nan)[0]).all()


def _two_raters(n: int, seed: int, rubric: Rubric) -> RatingMatrix:
    scores = synthetic_scores(n, 2, len(rubric.axes), seed=seed, missing=0.1).astype(np.float32)
    raters = ("judge:a", "human:张医生")
    return RatingMatrix(axes=tuple(rubric.axis_keys), raters=raters, samples=tuple(map(str, range(n))), scores=scores)


def test_service_bootstrap_equals_an_index_bootstrap_with_sklearn() -> None:
    rubric = make_rubric(1)
    n, n_boot, seed = 120, 200, 11
    matrix = _two_raters(n, 5, rubric)
    report = agreement_from_matrix(matrix, rubric, n_boot=n_boot, seed=seed)
    a, b = matrix.scores[0, :, 0].astype(float), matrix.scores[0, :, 1].astype(float)
    # The same draws as the service: one block of n_boot × n indices from the seeded generator.
    drawn = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    qwks = np.array([m.qwk(a[i], b[i]) for i in drawn])
    low, high = np.percentile(qwks, [2.5, 97.5])
    got = report.pairs[0].axes[0].metrics["qwk"]
    assert got.value == pytest.approx(m.qwk(a, b), abs=1e-12)
    assert (got.low, got.high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))


def _width(est: Estimate) -> float:
    assert est.low is not None and est.high is not None
    return est.high - est.low


def test_ci_contains_the_estimate_and_narrows_with_more_samples() -> None:
    rubric = make_rubric(3)
    small = agreement_from_matrix(_two_raters(150, 1, rubric), rubric, n_boot=300, seed=0)
    large = agreement_from_matrix(_two_raters(2400, 1, rubric), rubric, n_boot=300, seed=0)
    for metric in ("qwk", "alpha_ordinal", "icc2_1", "spearman", "exact"):
        for report in (small, large):
            for row in [*report.group, report.group_overall]:
                est = row.metrics[metric]
                assert est.low is not None and est.high is not None and est.value is not None
                assert est.low <= est.value <= est.high, (metric, row.axis)
        assert _width(large.group_overall.metrics[metric]) < _width(small.group_overall.metrics[metric]) / 2, metric


def test_no_resamples_means_no_intervals() -> None:
    rubric = make_rubric(2)
    report = agreement_from_matrix(_two_raters(100, 2, rubric), rubric, n_boot=0)
    est = report.group[0].metrics["qwk"]
    assert est.value is not None and est.low is None and est.high is None
