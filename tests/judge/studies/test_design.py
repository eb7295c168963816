"""The assignment design: k distinct raters per sample, loads within one, every pair of raters sharing samples."""

from __future__ import annotations

import itertools
import math

import pytest

from judge.studies.design import assign, check_design, min_samples, rater_orders
from judge.studies.errors import InvalidStudy
from judge.studies.service import plan

CASES = [(r, k) for r in range(2, 11) for k in range(2, r + 1)]


@pytest.mark.parametrize(("raters", "per_sample"), CASES)
def test_every_sample_gets_k_distinct_raters_and_loads_stay_within_one(raters: int, per_sample: int) -> None:
    for n in (1, 7, min_samples(raters, per_sample), 50):
        design = assign(n, raters, per_sample, seed=n)
        assert len(design) == n
        assert all(len(set(members)) == per_sample == len(members) for members in design)
        assert check_design(design, raters).balanced, (n, check_design(design, raters).loads)


@pytest.mark.parametrize(("raters", "per_sample"), CASES)
def test_every_pair_shares_samples_with_twice_the_minimum(raters: int, per_sample: int) -> None:
    # The design property the pairwise statistics need; near the minimum, study creation retries seeds.
    for n in range(2 * min_samples(raters, per_sample), 2 * min_samples(raters, per_sample) + 12, 5):
        check = check_design(assign(n, raters, per_sample, seed=0), raters)
        assert check.connected, (n, check.apart)


def test_pairs_share_about_equally_many_samples() -> None:
    # 200 samples, 3 raters, 2 each: 400 seats, each pair shares 200/3 samples; the spread is one.
    check = check_design(assign(200, 3, 2), 3)
    assert check.loads == [134, 133, 133] or sorted(check.loads) == [133, 133, 134]
    assert max(check.shared.values()) - min(check.shared.values()) <= 1
    check = check_design(assign(300, 10, 3), 10)
    expected = 300 * math.comb(3, 2) / math.comb(10, 2)  # 20 per pair
    assert all(abs(count - expected) <= 2 for count in check.shared.values()), check.shared


def test_plan_refuses_a_design_that_cannot_connect_and_names_the_field() -> None:
    with pytest.raises(InvalidStudy) as too_few:
        plan(2, 4, 2, 0)  # 6 pairs, 1 pair per sample
    assert too_few.value.field == "samples"
    assert "at least 6" in too_few.value.message
    with pytest.raises(InvalidStudy) as too_many:
        plan(10, 3, 4, 0)
    assert too_many.value.field == "per_sample"


def test_plan_finds_connected_designs_near_the_minimum() -> None:
    for raters, per_sample in [(3, 2), (4, 2), (5, 2), (5, 3), (6, 2)]:
        n = min_samples(raters, per_sample) + 2
        assert check_design(plan(n, raters, per_sample, 0), raters).connected


def test_rater_orders_are_shuffled_per_rater_and_cover_their_samples() -> None:
    design = assign(40, 4, 2, seed=3)
    orders = rater_orders(design, 4, seed=3)
    for rater, order in enumerate(orders):
        assert sorted(order) == [i for i, members in enumerate(design) if rater in members]
    assert len({tuple(o[:5]) for o in orders}) > 1
    assert orders == rater_orders(design, 4, seed=3)  # reproducible


def test_min_samples_is_the_pair_bound() -> None:
    for raters, per_sample in itertools.product(range(2, 8), range(2, 5)):
        if per_sample <= raters:
            assert min_samples(raters, per_sample) * math.comb(per_sample, 2) >= math.comb(raters, 2)
