"""Rating rows to arrays: rater order, lowest run, dropped rows, profiles."""

from __future__ import annotations

import numpy as np

from judge.agreement.matrix import RatingMatrix, profiles
from tests.judge.agreement.conftest import Row


def test_from_rows_builds_axes_samples_raters_with_nan() -> None:
    rows = [
        Row("s1", "judge:a", "safety", 4),
        Row("s1", "human:张医生", "safety", 5),
        Row("s2", "judge:a", "completeness", 2),
        Row("s2", "judge:a", "completeness", 3, run=1),  # a later run: the lowest run wins
        Row("s3", "judge:a", "unknown_axis", 3),
        Row("s3", "rm:x", "safety", 3),  # not a selected rater
    ]
    matrix = RatingMatrix.from_rows(iter(rows), axes=["safety", "completeness"], raters=["judge:a", "human:张医生"])
    assert matrix.samples == ("s1", "s2")
    assert matrix.scores.shape == (2, 2, 2)
    np.testing.assert_array_equal(matrix.axis("safety"), [[4, 5], [np.nan, np.nan]])
    np.testing.assert_array_equal(matrix.axis("completeness"), [[np.nan, np.nan], [2, np.nan]])
    assert matrix.dropped == 3
    only_one = RatingMatrix.from_rows(rows, axes=["completeness"], raters=["judge:a"], only_run=1)
    np.testing.assert_array_equal(only_one.scores, [[[3]]])


def test_categories_round_and_mark_missing() -> None:
    scores = np.array([[[1.0, 4.5, np.nan, 4.49, 9.0]]], dtype=np.float32)
    matrix = RatingMatrix(axes=("a",), raters=tuple("vwxyz"), samples=("s",), scores=scores)
    np.testing.assert_array_equal(matrix.categories(), [[[1, 5, 0, 4, 0]]])


def test_profiles_compress_and_restore() -> None:
    rng = np.random.default_rng(0)
    cats = rng.integers(0, 6, (500, 4)).astype(np.int8)
    prof = profiles(cats)
    np.testing.assert_array_equal(prof.table[prof.inverse], cats)
    assert prof.counts.sum() == 500
    many = rng.integers(0, 3, (50, 40)).astype(np.int8)  # too many raters for one integer code
    wide = profiles(many, levels=2)
    np.testing.assert_array_equal(wide.table[wide.inverse], many)
