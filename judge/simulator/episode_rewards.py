"""Episode rewards from per-turn rewards (mean | min | last | discounted). Pure: the trainer adapters import it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

RewardPolicy = Literal["mean", "min", "last", "discounted"]
REWARD_POLICIES: tuple[RewardPolicy, ...] = ("mean", "min", "last", "discounted")


def discounted(rewards: Sequence[float], gamma: float) -> float:
    """Normalised discounted return from the first turn: ``Σ γ^t r_t / Σ γ^t`` (stays on the rewards' scale)."""
    weights = [gamma**t for t in range(len(rewards))]
    return sum(w * r for w, r in zip(weights, rewards, strict=True)) / sum(weights)


def episode_reward(rewards: Sequence[float | None], policy: RewardPolicy, gamma: float = 0.9) -> float | None:
    """One episode's reward from its per-turn rewards; None when any turn is unscored (no invented number)."""
    if not rewards or any(r is None for r in rewards):
        return None
    scored = [float(r) for r in rewards if r is not None]
    if policy == "mean":
        return sum(scored) / len(scored)
    if policy == "min":
        return min(scored)
    if policy == "last":
        return scored[-1]
    return discounted(scored, gamma)
