"""The durable store: SQLAlchemy 2 async engine, ORM models, repositories (all SQL) and migrations."""

from judge.store.database import create_engine, make_session_factory, ping
from judge.store.repository import (
    Rating,
    RatingRepository,
    RewardModelConflict,
    RewardModelNotFound,
    RewardModelRecord,
    RewardModelRepository,
    RubricRepository,
    VerdictRepository,
)

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
