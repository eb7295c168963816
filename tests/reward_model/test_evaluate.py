"""Agreement metrics on hand-made predictions."""

from __future__ import annotations

import pytest

from reward_model.evaluate import calibration, evaluate_predictions
from reward_model.scores import Scores, round_score


def _onehot(level: int) -> tuple[float, ...]:
    return tuple(1.0 if i == level else 0.0 for i in range(1, 6))


def _scores(levels: list[int], probs: bool = True) -> Scores:
    return Scores(
        axis_keys=("a", "b"),
        expected=tuple(float(v) for v in levels),
        probs=tuple(_onehot(v) for v in levels) if probs else None,
        truncated=False,
        n_tokens=10,
        model_version="t",
    )


def test_perfect_agreement() -> None:
    rows = [[1, 5], [2, 4], [3, 3], [4, 2], [5, 1], [5, 5]]
    report = evaluate_predictions([_scores(r) for r in rows], [[_onehot(v) for v in r] for r in rows])
    for metrics in report.axes.values():
        assert metrics.qwk == pytest.approx(1.0) and metrics.spearman == pytest.approx(1.0)
        assert metrics.mae == 0 and metrics.pass_f1 == pytest.approx(1.0)
        assert metrics.ece == 0 and metrics.brier == 0
    assert report.all_pass.n == 6 and report.all_pass.pass_rate_label == pytest.approx(1 / 6)
    assert "(all axes pass)" in report.table()


def test_missing_labels_and_regression_predictions() -> None:
    preds = [_scores([5, 3], probs=False), _scores([4, 2], probs=False), _scores([1, 5], probs=False)]
    targets = [[_onehot(5), None], [_onehot(5), _onehot(2)], [_onehot(1), _onehot(5)]]
    report = evaluate_predictions(preds, targets, thresholds={"a": 4.0, "b": 3.0})
    assert report.axes["a"].n == 3 and report.axes["b"].n == 2
    assert report.axes["a"].mae == pytest.approx(1 / 3)
    assert report.all_pass.n == 2  # a sample missing an axis label cannot be judged for "all axes pass"


def test_calibration_and_rounding() -> None:
    ece, brier = calibration([0.9, 0.9, 0.1, 0.1], [1, 0, 0, 0])
    assert brier == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    assert ece == pytest.approx(0.5 * abs(0.9 - 0.5) + 0.5 * abs(0.1 - 0.0))
    assert [round_score(v) for v in (0.2, 1.49, 1.5, 4.5, 6.0)] == [1, 1, 2, 5, 5]
