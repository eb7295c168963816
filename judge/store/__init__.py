"""The durable store: SQLAlchemy 2 async engine, ORM models, repositories (all SQL) and migrations."""

from judge.store.database import create_engine, make_session_factory, ping
from judge.store.ratings_repository import Rating, RatingRepository
from judge.store.reward_models_repository import (
    RewardModelConflict,
    RewardModelNotFound,
    RewardModelRecord,
    RewardModelRepository,
)
from judge.store.rubrics_repository import RubricRepository
from judge.store.verdicts_repository import VerdictRepository

__all__ = [
    "Rating",
    "RatingRepository",
    "RewardModelConflict",
    "RewardModelNotFound",
    "RewardModelRecord",
    "RewardModelRepository",
    "RubricRepository",
    "VerdictRepository",
    "create_engine",
    "make_session_factory",
    "ping",
]
