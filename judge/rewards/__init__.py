"""RL rewards for GRPO trainers: batches of rollouts -> rewards, per-group statistics, failure policy.

The native batch API (``POST /v1/rewards``), the OpenRLHF protocol (``POST /get_reward``) and the trainer
adapters (:mod:`judge.adapters`) all come through here, and everything here goes through the Scorer.
"""

from judge.rewards.schemas import OnFailure, RewardItemIn, RewardsRequest
from judge.rewards.service import RewardBatch, RewardOutcome, prepare_item, score_rewards
from judge.rewards.stats import GroupStats, group_stats, zero_variance_fraction

__all__ = [
    "GroupStats",
    "OnFailure",
    "RewardBatch",
    "RewardItemIn",
    "RewardOutcome",
    "RewardsRequest",
    "group_stats",
    "prepare_item",
    "score_rewards",
    "zero_variance_fraction",
]
