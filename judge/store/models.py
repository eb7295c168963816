"""ORM models. Every table lives on ``Base.metadata``; migrations/ must match it (a test checks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from judge.db.base import HASH_LEN, VERDICT_ID_LEN, Base, BigIntPK, JSONType, created_at_column

__all__ = ["RatingRow", "RewardModelRow", "RubricRow", "SampleRow", "VerdictRow"]


def _created_at() -> Mapped[datetime]:
    return created_at_column()


class RubricRow(Base):
    __tablename__ = "rubrics"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(HASH_LEN), unique=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = _created_at()


class SampleRow(Base):
    __tablename__ = "samples"

    hash: Mapped[str] = mapped_column(String(HASH_LEN), primary_key=True)
    # Canonical content (messages, reasoning, response, reference): exactly what the hash covers.
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = _created_at()


class VerdictRow(Base):
    __tablename__ = "verdicts"
    __table_args__ = (
        # (cache_key, complete) serves both the cache-key lookup and "newest complete verdict per key";
        # a separate single-column cache_key index would only cost writes.
        Index("ix_verdicts_cache_key_complete", "cache_key", "complete"),
        # Everything asked per rubric: judges' ratings (newest complete verdict per sample and judge, by
        # DISTINCT ON in index order), one sample's verdicts under a rubric, training data, group scores. It
        # replaces the single-column rubric_hash and sample_hash indexes (no query asked by sample alone).
        Index("ix_verdicts_rubric_sample_judge", "rubric_hash", "sample_hash", "judge", "created_at"),
        # Retention finds failed verdicts by age; they are few, so the partial index is small.
        Index(
            "ix_verdicts_failed_created_at",
            "created_at",
            postgresql_where=text("NOT complete"),
            sqlite_where=text("NOT complete"),
        ),
    )

    id: Mapped[str] = mapped_column(String(VERDICT_ID_LEN), primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(HASH_LEN))
    sample_hash: Mapped[str] = mapped_column(String(HASH_LEN), ForeignKey("samples.hash"))
    rubric_ref: Mapped[str] = mapped_column(String(120))
    rubric_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    judge: Mapped[str] = mapped_column(String(100))
    profile_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    complete: Mapped[bool] = mapped_column(Boolean)
    # Per axis: score, expected, mass, status, rationale, score_method, error.
    axes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    calls: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    retries: Mapped[int] = mapped_column(Integer)
    # Of prompt_tokens, those served from the provider's prefix cache; and extra calls sent by hedging. NULL means
    # "not recorded" (verdicts stored before migration 0010 were never measured for them), never "none": every
    # verdict written since stores its count. No default of 0 (Python or server side): it would claim a measurement.
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    hedges: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)
    clipped: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = _created_at()
    # Group-mode verdicts: the group's composition hash and the sample's 1-based display position and group size.
    group_hash: Mapped[str | None] = mapped_column(String(HASH_LEN))
    group_position: Mapped[int | None] = mapped_column(Integer)
    group_size: Mapped[int | None] = mapped_column(Integer)
    # The rubric's own aggregation at judging time, so that "what passed" is a query, not a recomputation.
    reward: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)


class RatingRow(Base):
    """One score on one axis by one rater (human, reward model; a judge only in a stability study), for agreement.

    A judge's ordinary rating is its newest complete verdict, read from ``verdicts`` (judge/store/judge_ratings.py).
    """

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("rubric_hash", "sample_hash", "rater", "axis", "run"),
        # Deleting a verdict sets its ratings' verdict_id to NULL: without this index every deleted verdict
        # would scan the table. Only judge rows carry a verdict id, so the partial index stays small.
        Index(
            "ix_ratings_verdict_id",
            "verdict_id",
            postgresql_where=text("verdict_id IS NOT NULL"),
            sqlite_where=text("verdict_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rubric_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    sample_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    # "judge:deepseek", "human:dr_li", "rm:prmed-rm@2".
    rater: Mapped[str] = mapped_column(String(200))
    axis: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    run: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    verdict_id: Mapped[str | None] = mapped_column(
        String(VERDICT_ID_LEN), ForeignKey("verdicts.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()


class RewardModelRow(Base):
    """A trained reward model in the registry: where its weights are and what it scores."""

    __tablename__ = "reward_models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(String(200))
    rubric_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    axis_keys: Mapped[list[str]] = mapped_column(JSONType)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = _created_at()


# Feature tables defined next to their features; imported here so that they are on Base.metadata (migrations, tests).
# One direction only: judge.jobs.models and judge.studies.models import judge.db, never this module.
from judge.jobs import models as _job_models  # noqa: E402, F401
from judge.studies import models as _study_models  # noqa: E402, F401
