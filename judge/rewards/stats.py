"""Per-group reward statistics: what a GRPO trainer needs to see whether a group carries any signal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Rewards closer than this count as one value (aggregation is exact to far better than this).
_DISTINCT_DECIMALS = 9


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Rewards of one group. ``std`` is the population standard deviation over the scored items."""

    group_id: str
    size: int
    scored: int
    mean: float | None
    std: float | None
    distinct: int
    # True when the scored rewards are all equal (or none was scored): group-relative advantages are all 0.
    zero_variance: bool


def group_stats(group_id: str, rewards: Sequence[float | None]) -> GroupStats:
    """Statistics of one group's rewards; items without a reward (None) are left out of them."""
    scored = [r for r in rewards if r is not None]
    distinct = len({round(r, _DISTINCT_DECIMALS) for r in scored})
    if not scored:
        return GroupStats(group_id, len(rewards), 0, None, None, 0, True)
    mean = math.fsum(scored) / len(scored)
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in scored) / len(scored))
    return GroupStats(group_id, len(rewards), len(scored), mean, std, distinct, distinct <= 1)


def zero_variance_fraction(groups: Sequence[GroupStats]) -> float | None:
    """The fraction of groups without reward variance (None without groups)."""
    if not groups:
        return None
    return sum(1 for g in groups if g.zero_variance) / len(groups)
