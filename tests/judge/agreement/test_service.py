"""compute_agreement end to end on synthetic ratings, checked against the library metrics."""

from __future__ import annotations

import numpy as np
import pytest

from judge.agreement import metrics as m
from judge.agreement.errors import NotEnoughRatings, RaterNotFound
from judge.agreement.service import compute_agreement
from rubrics.schema import Rubric
from tests.judge.agreement.conftest import Row, make_rubric, synthetic_scores, to_rows

RATERS = ["judge:a", "judge:b", "human:张医生"]


@pytest.fixture(scope="module")
def study() -> tuple[Rubric, np.ndarray, list[Row]]:
    rubric = make_rubric(4, per_axis={"utterance_correction": 3.0})
    scores = synthetic_scores(300, 3, 4, seed=9, missing=0.15, bias=(0.0, 0.3, -0.2))
    rows = to_rows(scores, rubric, RATERS) + [Row("f" * 64, "rm:other", rubric.axis_keys[0], 3.0)]
    return rubric, scores, rows


def test_every_metric_matches_the_libraries(study: tuple[Rubric, np.ndarray, list[Row]]) -> None:
    rubric, scores, rows = study
    report = compute_agreement(rows, rubric, "judge:*,human:*", n_boot=50, seed=1)
    assert report.raters == RATERS
    assert report.n_samples == 300
    assert [a.title_zh for a in report.axes] == ["情绪感知", "扰动识别", "话语纠正", "主诉提取"]
    for a, key in enumerate(rubric.axis_keys):
        data = scores[a]
        group = report.group_axis(key)
        assert group.metrics["alpha_ordinal"].value == pytest.approx(m.krippendorff_alpha(data, "ordinal"), abs=1e-10)
        assert group.metrics["alpha_interval"].value == pytest.approx(m.krippendorff_alpha(data, "interval"))
        complete = data[~np.isnan(data).any(axis=1)]
        assert group.n_complete == len(complete)
        single, average = m.icc2(complete)
        assert group.metrics["icc2_1"].value == pytest.approx(single, abs=1e-10)
        assert group.metrics["icc2_k"].value == pytest.approx(average, abs=1e-10)
        qwks = []
        for pair in report.pairs:
            i, j = RATERS.index(pair.rater_a), RATERS.index(pair.rater_b)
            row = pair.axes[a]
            qwks.append(m.qwk(data[:, i], data[:, j]))
            assert row.metrics["qwk"].value == pytest.approx(qwks[-1], abs=1e-10)
            assert row.metrics["kendall"].value == pytest.approx(m.kendall(data[:, i], data[:, j]), abs=1e-10)
            assert row.confusion == m.contingency(data[:, i], data[:, j]).tolist()
            assert row.n == int((~np.isnan(data[:, i]) & ~np.isnan(data[:, j])).sum())
        assert group.metrics["qwk"].value == pytest.approx(np.mean(qwks), abs=1e-10)
    assert report.group_overall.metrics["qwk"].value == pytest.approx(
        np.mean([g.metrics["qwk"].value for g in report.group])
    )


def test_pass_decisions_follow_the_rubric_thresholds(study: tuple[Rubric, np.ndarray, list[Row]]) -> None:
    _, scores, rows = study
    # Lower thresholds than the paper's so that samples pass often enough for kappa to be defined.
    rubric = make_rubric(4, threshold=2.0, per_axis={"utterance_correction": 3.0})
    report = compute_agreement(rows, rubric, ["judge:a", "human:张医生"], n_boot=0)
    thresholds = np.array([rubric.pass_policy.threshold_for(k) for k in rubric.axis_keys])
    assert [a.threshold for a in report.axes] == [2.0, 2.0, 3.0, 2.0]
    a, h = scores[:, :, 0], scores[:, :, 2]
    # Sample level: both raters scored every axis; pass = every axis above its threshold.
    both = ~np.isnan(a).any(axis=0) & ~np.isnan(h).any(axis=0)
    pass_a = (np.nan_to_num(a) > thresholds[:, None]).all(axis=0)[both]
    pass_h = (np.nan_to_num(h) > thresholds[:, None]).all(axis=0)[both]
    overall = report.pairs[0].overall
    assert report.pairs[0].n_pass_samples == int(both.sum())
    assert 0 < pass_a.sum() < len(pass_a)
    assert overall.metrics["pass_kappa"].value == pytest.approx(m.cohen_kappa(pass_a, pass_h))
    assert overall.metrics["pass_f1"].value == pytest.approx(m.balanced_f1(pass_a, pass_h))
    for axis in (1, 2):
        row = report.pairs[0].axes[axis]
        x, y = a[axis], h[axis]
        keep = ~np.isnan(x) & ~np.isnan(y)
        t = thresholds[axis]
        assert row.metrics["pass_kappa"].value == pytest.approx(m.cohen_kappa(x[keep] > t, y[keep] > t))
        assert row.metrics["pass_f1"].value == pytest.approx(m.balanced_f1(x[keep] > t, y[keep] > t))


def test_per_axis_threshold_override() -> None:
    rubric = make_rubric(7, per_axis={"safety": 2.0})
    scores = synthetic_scores(200, 2, 7, seed=2, missing=0.0)
    report = compute_agreement(to_rows(scores, rubric, ["judge:a", "judge:b"]), rubric, "judge:*", n_boot=0)
    safety = rubric.axis_keys.index("safety")
    assert report.axes[safety].threshold == 2.0
    x, y = scores[safety, :, 0], scores[safety, :, 1]
    got = report.pairs[0].axes[safety].metrics["pass_kappa"].value
    assert got == pytest.approx(m.cohen_kappa(x > 2, y > 2))


def test_identical_raters_agree_perfectly_and_means_are_reported() -> None:
    rubric = make_rubric(2)
    scores = synthetic_scores(100, 1, 2, seed=3, missing=0.0)
    rows = to_rows(np.repeat(scores, 2, axis=2), rubric, ["judge:a", "judge:a-copy"])
    report = compute_agreement(rows, rubric, "judge:*", n_boot=20)
    for name in ("qwk", "alpha_ordinal", "alpha_interval", "icc2_1", "spearman", "kendall", "exact"):
        assert report.group[0].metrics[name].value == pytest.approx(1.0), name
    assert report.group[0].metrics["mean_diff"].value == 0.0
    mean = next(r for r in report.rater_means if r.rater == "judge:a" and r.axis == rubric.axis_keys[0])
    assert mean.n == 100 and mean.mean == pytest.approx(float(scores[0].mean()))


def test_errors_for_unknown_raters_and_single_raters(study: tuple[Rubric, np.ndarray, list[Row]]) -> None:
    rubric, _, rows = study
    with pytest.raises(RaterNotFound):
        compute_agreement(rows, rubric, "human:李*", n_boot=0)
    with pytest.raises(NotEnoughRatings):
        compute_agreement(rows, rubric, "judge:a", n_boot=0)


def test_report_json_has_no_nan(study: tuple[Rubric, np.ndarray, list[Row]]) -> None:
    rubric, _, rows = study
    report = compute_agreement(rows, rubric, RATERS, n_boot=10)
    text = report.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    assert type(report).model_validate_json(text) == report
