"""Judge stability: self-agreement over runs and position effects in group mode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from judge.agreement.errors import NotEnoughRatings
from judge.agreement.stability import position_effects, self_agreement
from rubrics.schema import Rubric
from tests.judge.agreement.conftest import Row, make_rubric, to_rows


def _runs(scores: np.ndarray, rubric: Rubric, rater: str) -> list[Row]:
    """scores: runs × axes × samples."""
    rows: list[Row] = []
    for run, run_scores in enumerate(scores):
        rows += to_rows(run_scores[:, :, None], rubric, [rater], run=run)
    return rows


def test_a_deterministic_judge_agrees_with_itself() -> None:
    rubric = make_rubric(3)
    rng = np.random.default_rng(0)
    once = rng.integers(1, 6, (3, 120)).astype(float)
    report = self_agreement(_runs(np.stack([once] * 3), rubric, "judge:a"), rubric, "judge:a", n_boot=30)
    assert report.runs == [0, 1, 2]
    assert report.agreement.raters == ["judge:a#run0", "judge:a#run1", "judge:a#run2"]
    assert report.pass_flip_share == 0.0
    for axis in report.axes:
        assert axis.n_samples == 120 and axis.unstable_share == 0.0 and axis.mean_sd == 0.0
    assert report.agreement.group_overall.metrics["alpha_ordinal"].value == pytest.approx(1.0)


def test_a_noisy_judge_is_less_stable() -> None:
    rubric = make_rubric(3, threshold=3.0)
    rng = np.random.default_rng(1)
    truth = rng.integers(1, 6, (3, 200))
    noisy = np.clip(truth + rng.integers(-1, 2, (4, 3, 200)), 1, 5).astype(float)
    noisy[0, 0, :10] = np.nan  # a run that failed on some samples
    other = to_rows(truth[:, :, None].astype(float), rubric, ["judge:b"])
    report = self_agreement(_runs(noisy, rubric, "judge:a") + other, rubric, "judge:a", n_boot=30)
    assert report.runs == [0, 1, 2, 3]
    alpha = report.agreement.group_overall.metrics["alpha_ordinal"]
    assert alpha.value is not None and 0.5 < alpha.value < 0.95
    assert all(axis.unstable_share is not None and axis.unstable_share > 0.5 for axis in report.axes)
    assert report.axes[0].n_samples == 200
    assert report.pass_flip_share is not None and 0 < report.pass_flip_share < 1


def test_self_agreement_needs_two_runs() -> None:
    rubric = make_rubric(2)
    rows = to_rows(np.ones((2, 10, 1)), rubric, ["judge:a"])
    with pytest.raises(NotEnoughRatings):
        self_agreement(rows, rubric, "judge:a")


@dataclass(frozen=True)
class Placed:
    sample_hash: str
    group: str
    position: int
    axis: str
    score: float


def _group_runs(rubric: Rubric, effect: float, seed: int) -> list[Placed]:
    """200 groups of 4 responses, each judged in 3 shuffled orders; the first position gets ``effect`` more."""
    rng = np.random.default_rng(seed)
    records = []
    for g in range(200):
        quality = rng.normal(3.0, 0.8, 4)
        for repeat in range(3):
            order = rng.permutation(4)
            for position, response in enumerate(order):
                for axis in rubric.axis_keys:
                    raw = quality[response] + (effect if position == 0 else 0.0) + rng.normal(0, 0.4)
                    score = float(np.clip(np.rint(raw), 1, 5))
                    records.append(Placed(f"g{g}-r{response}", f"g{g}-run{repeat}", position, axis, score))
    return records


def test_position_effect_is_found_where_there_is_one() -> None:
    rubric = make_rubric(2)
    report = position_effects(_group_runs(rubric, effect=0.6, seed=2), rubric, n_boot=200, seed=0)
    assert report.n_groups == 600
    first = report.overall.positions[0]
    assert first.position == 0 and first.n == 600 * 2
    assert first.shift.low is not None and first.shift.low > 0.2
    for later in report.overall.positions[1:]:
        assert later.shift.high is not None and later.shift.high < 0
    assert report.overall.shift_spearman is not None and report.overall.shift_spearman < 0
    assert report.overall.shift_spearman_p is not None and report.overall.shift_spearman_p < 1e-6
    assert report.overall.kruskal_p is not None and report.overall.kruskal_p < 1e-6
    assert [effect.axis for effect in report.axes] == rubric.axis_keys


def test_no_position_effect_where_there_is_none() -> None:
    rubric = make_rubric(1)
    report = position_effects(_group_runs(rubric, effect=0.0, seed=3), rubric, n_boot=200, seed=0)
    for row in report.overall.positions:
        assert row.shift.low is not None and row.shift.high is not None
        assert row.shift.low < 0 < row.shift.high
        assert row.mean.low is not None and row.mean.high is not None and row.mean.low < row.mean.high
    assert report.overall.shift_spearman_p is not None and report.overall.shift_spearman_p > 0.01
