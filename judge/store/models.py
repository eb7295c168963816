"""ORM models. Every table lives on ``Base.metadata``; migrations/ must match it (a test checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can name what they alter or drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HASH_LEN = 64
VERDICT_ID_LEN = 32

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite auto-increments only an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits for the one table that grows per axis.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone, so it is re-attached on load)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware one")
        value = value.astimezone(UTC)
        # SQLite compares datetimes as text: store them without an offset so ordering stays lexical.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow, server_default=text("CURRENT_TIMESTAMP"))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


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
    # (cache_key, complete) serves both the cache-key lookup and "newest complete verdict per key";
    # a separate single-column cache_key index would only cost writes.
    __table_args__ = (Index("ix_verdicts_cache_key_complete", "cache_key", "complete"),)

    id: Mapped[str] = mapped_column(String(VERDICT_ID_LEN), primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(HASH_LEN))
    sample_hash: Mapped[str] = mapped_column(String(HASH_LEN), ForeignKey("samples.hash"), index=True)
    rubric_ref: Mapped[str] = mapped_column(String(120))
    rubric_hash: Mapped[str] = mapped_column(String(HASH_LEN), index=True)
    judge: Mapped[str] = mapped_column(String(100))
    profile_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    complete: Mapped[bool] = mapped_column(Boolean)
    # Per axis: score, expected, mass, status, rationale, score_method, error.
    axes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    calls: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    retries: Mapped[int] = mapped_column(Integer)
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
    """One score on one axis by one rater (judge, human or reward model), for agreement studies."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("rubric_hash", "sample_hash", "rater", "axis", "run"),)

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
from judge.jobs import models as _job_models  # noqa: E402, F401
from judge.studies import models as _study_models  # noqa: E402, F401
