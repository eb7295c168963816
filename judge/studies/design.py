"""The assignment design of a study: which raters rate which samples.

Every sample gets exactly ``k`` distinct raters. The design is

- **balanced**: raters' loads differ by at most one sample, and the number of samples two raters share is
  spread as evenly as the counts allow (a greedy approximation of a balanced incomplete block design);
- **connected**: every pair of raters shares at least one sample whenever ``n·C(k,2) >= C(r,2)``, which is
  what pairwise statistics (QWK, Spearman per pair) need, and what makes Krippendorff's α well defined for
  each pair; :func:`check_design` reports any pair left apart, and study creation refuses such a design.

Greedy rule, sample after sample: the raters below the k-th lowest load all go in (that keeps loads within
one); the remaining seats go to the raters at that load that open the most new pairs, then add the least to
already-shared pairs; remaining ties are broken by a seeded random order. Each rater's own order of samples
is then shuffled (seeded) so that no position effect is shared by all raters.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

# Above this many candidate subsets per sample, the seats are filled one at a time instead.
_MAX_SUBSETS = 2000


@dataclass(frozen=True)
class DesignCheck:
    """What a design achieves: loads per rater and samples shared per pair of raters."""

    loads: list[int]
    shared: dict[tuple[int, int], int]

    @property
    def balanced(self) -> bool:
        return max(self.loads) - min(self.loads) <= 1

    @property
    def apart(self) -> list[tuple[int, int]]:
        """Pairs of raters (indices) that share no sample."""
        return [pair for pair, count in sorted(self.shared.items()) if count == 0]

    @property
    def connected(self) -> bool:
        return not self.apart


def min_samples(raters: int, per_sample: int) -> int:
    """The fewest samples with which every pair of ``raters`` can share one at ``per_sample`` raters each."""
    return math.ceil(math.comb(raters, 2) / math.comb(per_sample, 2))


def _pairs(members: Sequence[int]) -> list[tuple[int, int]]:
    return [(a, b) if a < b else (b, a) for a, b in itertools.combinations(members, 2)]


def assign(n_samples: int, n_raters: int, per_sample: int, *, seed: int = 0) -> list[list[int]]:
    """Rater indices (sorted) for each of ``n_samples`` samples, ``per_sample`` distinct raters each."""
    if not 1 <= per_sample <= n_raters:
        raise ValueError(f"per_sample must be between 1 and {n_raters}")
    rng = random.Random(seed)
    loads = [0] * n_raters
    shared = {pair: 0 for pair in itertools.combinations(range(n_raters), 2)}
    design: list[list[int]] = []
    for _ in range(n_samples):
        tiebreak = list(range(n_raters))
        rng.shuffle(tiebreak)
        rank = {rater: i for i, rater in enumerate(tiebreak)}
        by_load = sorted(range(n_raters), key=lambda r: (loads[r], rank[r]))
        cutoff = loads[by_load[per_sample - 1]]
        fixed = [r for r in by_load if loads[r] < cutoff]
        pool = [r for r in by_load if loads[r] == cutoff]
        seats = per_sample - len(fixed)

        def cost(members: Sequence[int]) -> tuple[int, int]:
            pairs = _pairs(members)
            return (-sum(1 for p in pairs if shared[p] == 0), sum(shared[p] for p in pairs))

        if math.comb(len(pool), seats) <= _MAX_SUBSETS:
            chosen = list(min(itertools.combinations(pool, seats), key=lambda extra: cost([*fixed, *extra])))
        else:
            chosen = []
            for _ in range(seats):
                best = min((r for r in pool if r not in chosen), key=lambda r: cost([*fixed, *chosen, r]))
                chosen.append(best)
        members = sorted([*fixed, *chosen])
        for rater in members:
            loads[rater] += 1
        for pair in _pairs(members):
            shared[pair] += 1
        design.append(members)
    return design


def check_design(design: Sequence[Sequence[int]], n_raters: int) -> DesignCheck:
    """Loads and shared samples of a design (used by tests and by study creation)."""
    loads = [0] * n_raters
    shared = {pair: 0 for pair in itertools.combinations(range(n_raters), 2)}
    for members in design:
        for rater in members:
            loads[rater] += 1
        for pair in _pairs(members):
            shared[pair] += 1
    return DesignCheck(loads=loads, shared=shared)


def rater_orders(design: Sequence[Sequence[int]], n_raters: int, *, seed: int = 0) -> list[list[int]]:
    """Each rater's samples (indices into the design) in that rater's own shuffled order."""
    orders: list[list[int]] = [[] for _ in range(n_raters)]
    for sample, members in enumerate(design):
        for rater in members:
            orders[rater].append(sample)
    for rater, order in enumerate(orders):
        random.Random(f"{seed}:{rater}").shuffle(order)
    return orders
