"""Metrics against published worked examples, and the vectorised metrics against the library ones."""

from __future__ import annotations

import numpy as np
import pytest

from judge.agreement import metrics as m

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers × 12 units with
# missing values; published alpha: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF_C = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, NAN],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 3],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
).T  # units × observers
# Shrout & Fleiss (1979), Table 2: 6 targets × 4 judges; ICC(2,1) = 0.29, ICC(2,4) = 0.62.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_krippendorff_2011_example(level: m.AlphaLevel, expected: float) -> None:
    assert m.krippendorff_alpha(KRIPPENDORFF_C, level) == pytest.approx(expected, abs=5e-4)
    vectorised = m.alpha_from_coincidence(m.coincidence(KRIPPENDORFF_C), level)
    assert float(vectorised) == pytest.approx(expected, abs=5e-4)


def test_icc_matches_shrout_fleiss_1979() -> None:
    single, average = m.icc2(SHROUT_FLEISS)
    assert (single, average) == (pytest.approx(0.29, abs=5e-3), pytest.approx(0.62, abs=5e-3))
    v_single, v_average = m.icc_from_moments(m.icc_moments(SHROUT_FLEISS, centre=5.0).sum(axis=0))
    assert float(v_single) == pytest.approx(single, abs=1e-12)
    assert float(v_average) == pytest.approx(average, abs=1e-12)


def test_cohen_kappa_matches_textbook_two_by_two() -> None:
    # 50 proposals, two readers: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4.
    a = np.array([1] * 25 + [0] * 25)
    b = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15)
    assert m.cohen_kappa(a, b) == pytest.approx(0.4)
    kappa, _ = m.binary_metrics(np.float64(20), np.float64(5), np.float64(10), np.float64(15))
    assert float(kappa) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("b", "expected"),
    [([8, 8, 6, 6, 7, 6, 1, 4, 8], 0.758620689655172), ([3, 5, 6, 6, 7, 6, 1, 4, 8], 0.438095238095238)],
)
def test_quadratic_weighted_kappa_matches_published_essay_scores(b: list[int], expected: float) -> None:
    # Maple EssayTools QuadraticWeightedKappa documentation, examples 1 and 2 (scores 1..10).
    a = [9, 7, 8, 7, 6, 8, 3, 5, 10]
    assert m.qwk(a, b, labels=range(1, 11)) == pytest.approx(expected, abs=1e-12)
    table = m.contingency(a, b, levels=10)
    assert float(m.table_metrics(table, 5, values=np.arange(1, 11))["qwk"]) == pytest.approx(expected, abs=1e-12)


def test_spearman_and_kendall_match_worked_examples() -> None:
    # Wikipedia "Spearman's rank correlation coefficient": IQ vs hours of TV, rho = -29/165.
    iq = [106, 100, 86, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 27, 2, 50, 28, 29, 20, 12, 6, 17]
    assert m.spearman(iq, tv) == pytest.approx(-29 / 165)
    # 8 concordant and 2 discordant pairs: tau = 6 / 10.
    assert m.kendall([1, 2, 3, 4, 5], [1, 3, 2, 5, 4]) == pytest.approx(0.6)
    table = m.contingency([1, 2, 3, 4, 5], [1, 3, 2, 5, 4])
    out = m.table_metrics(table, 4)
    assert float(out["kendall"]) == pytest.approx(0.6)
    assert float(out["spearman"]) == pytest.approx(0.8)


def test_balanced_f1_is_the_mean_of_both_classes() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    pred = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    f1_pass, f1_fail = 2 * 3 / (2 * 3 + 1 + 1), 2 * 5 / (2 * 5 + 1 + 1)
    assert m.balanced_f1(truth, pred) == pytest.approx((f1_pass + f1_fail) / 2)
    _, f1 = m.binary_metrics(np.float64(3), np.float64(1), np.float64(1), np.float64(5))
    assert float(f1) == pytest.approx((f1_pass + f1_fail) / 2)


def _random_pair(rng: np.random.Generator, n: int, agree: bool) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(1, 6, n).astype(float)
    b = np.clip(a + rng.integers(-1, 2, n), 1, 5) if agree else rng.integers(1, 6, n).astype(float)
    a[rng.random(n) < 0.2] = NAN
    b[rng.random(n) < 0.2] = NAN
    return a, b


@pytest.mark.parametrize("seed", range(6))
def test_table_metrics_equal_library_metrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = _random_pair(rng, int(rng.integers(20, 200)), agree=seed % 2 == 0)
    got = m.table_metrics(m.contingency(a, b), threshold=3.0)
    x, y = a[~np.isnan(a) & ~np.isnan(b)], b[~np.isnan(a) & ~np.isnan(b)]
    icc21, icc2k = m.icc2(np.c_[x, y])
    expected = {
        "qwk": m.qwk(a, b),
        "alpha_ordinal": m.krippendorff_alpha(np.c_[x, y], "ordinal"),
        "alpha_interval": m.krippendorff_alpha(np.c_[x, y], "interval"),
        "icc2_1": icc21,
        "icc2_k": icc2k,
        "spearman": m.spearman(a, b),
        "kendall": m.kendall(a, b),
        "exact": m.exact_agreement(a, b),
        "within_one": m.within_one(a, b),
        "mean_diff": float(np.mean(y - x)),
        "pass_kappa": m.cohen_kappa(x > 3, y > 3),
        "pass_f1": m.balanced_f1(x > 3, y > 3),
        "gwet_ac2": m.gwet_ac2(x, y),
        "pass_pabak": m.pabak(x > 3, y > 3),
    }
    assert set(got) == set(m.PAIR_METRICS)
    for name, value in expected.items():
        assert float(got[name]) == pytest.approx(value, abs=1e-10), name


@pytest.mark.parametrize("seed", range(4))
def test_multi_rater_alpha_and_icc_equal_library(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n, raters = 150, 2 + seed
    truth = rng.integers(1, 6, (n, 1))
    data = np.clip(truth + rng.integers(-1, 2, (n, raters)), 1, 5).astype(float)
    data[rng.random(data.shape) < 0.25] = NAN
    coincidence = m.coincidence(data)
    for level in ("nominal", "ordinal", "interval"):
        expected = m.krippendorff_alpha(data, level)
        assert float(m.alpha_from_coincidence(coincidence, level)) == pytest.approx(expected, abs=1e-10)
    complete = data[~np.isnan(data).any(axis=1)]
    single, average = m.icc_from_moments(m.icc_moments(complete).sum(axis=0))
    assert (float(single), float(average)) == pytest.approx(m.icc2(complete), abs=1e-10)


def test_vectorised_metrics_work_on_stacks_of_tables() -> None:
    rng = np.random.default_rng(7)
    tables = np.stack([m.contingency(*_random_pair(rng, 80, agree=True)) for _ in range(5)])
    stacked = m.table_metrics(tables, 4.0)
    for i, table in enumerate(tables):
        single = m.table_metrics(table, 4.0)
        for name in m.PAIR_METRICS:
            assert stacked[name][i] == pytest.approx(single[name], nan_ok=True)


def test_undefined_metrics_are_nan() -> None:
    same = np.zeros((5, 5))
    same[2, 2] = 10  # both raters always say 3: no variance
    out = m.table_metrics(same, 4.0)
    assert np.isnan(out["qwk"]) and np.isnan(out["spearman"]) and np.isnan(out["pass_kappa"])
    assert out["exact"] == 1.0 and out["pass_f1"] == 1.0  # both always fail: the fail class agrees perfectly
    empty = m.table_metrics(np.zeros((5, 5)), 4.0)
    assert all(np.isnan(empty[name]) for name in m.PAIR_METRICS)


# --- skewed scales: Gwet's AC2 and PABAK (issue 9) ---------------------------------------------------------------
# Reference values from the irrCAC package (PyPI irrCAC 0.4.4, Gwet's own Python port of his R package):
# CAC(pandas.DataFrame({"r1": a, "r2": b}), weights=W, categories=[1, 2, 3, 4, 5]).gwet()["est"]
# ["coefficient_value"], rounded by irrCAC to 5 decimals. Computed once: irrCAC pins numpy < 2, so it is not a
# test dependency.
ALL_FIVES_BUT_ONE = ([5] * 19 + [4], [5] * 20)
SPREAD = ([1, 2, 3, 3, 2, 1, 4, 1, 2, 5, 4, 5, 3, 3, 2], [1, 3, 3, 3, 2, 2, 4, 1, 3, 5, 4, 5, 2, 3, 1])


def test_ordinal_weights_are_gwets() -> None:
    # irrCAC's ordinal weights for 5 categories (first row): 1, 0.9, 0.7, 0.4, 0.
    assert m.ordinal_weights()[0].tolist() == pytest.approx([1.0, 0.9, 0.7, 0.4, 0.0])


@pytest.mark.parametrize(("pair", "irrcac_ac2"), [(ALL_FIVES_BUT_ONE, 0.99477), (SPREAD, 0.88814)])
def test_gwet_ac2_equals_irrcac(pair: tuple[list[int], list[int]], irrcac_ac2: float) -> None:
    a, b = pair
    assert m.gwet_ac2(a, b) == pytest.approx(irrcac_ac2, abs=5e-6)
    assert float(m.table_metrics(m.contingency(a, b), 4.0)["gwet_ac2"]) == pytest.approx(irrcac_ac2, abs=5e-6)


def test_on_a_skewed_scale_ac2_and_pabak_do_not_collapse_where_qwk_and_alpha_do() -> None:
    # "All 5 but one 4" (the pass line at 5): near-perfect agreement that kappa-type statistics call zero.
    a, b = ALL_FIVES_BUT_ONE
    out = m.table_metrics(m.contingency(a, b), 4.0)
    assert float(out["exact"]) == pytest.approx(0.95)
    assert float(out["qwk"]) == pytest.approx(0.0) and float(out["alpha_ordinal"]) < 0.05
    assert float(out["gwet_ac2"]) > 0.99
    # PABAK = 2 p_o - 1 (Byrt, Bishop & Carlin 1993, J Clin Epidemiol 46:423): 19 of 20 pass decisions agree.
    assert float(out["pass_pabak"]) == pytest.approx(2 * 0.95 - 1)
    assert m.pabak([True] * 19 + [False], [True] * 20) == pytest.approx(0.9)
