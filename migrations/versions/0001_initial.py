"""Initial schema: rubrics, samples, verdicts, ratings, reward_models.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _created_at() -> sa.Column[datetime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "rubrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("body", JSON, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubrics")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_rubrics_content_hash")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_rubrics_name_version")),
    )
    op.create_table(
        "samples",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("content", JSON, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_samples")),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("sample_hash", sa.String(length=64), nullable=False),
        sa.Column("rubric_ref", sa.String(length=120), nullable=False),
        sa.Column("rubric_hash", sa.String(length=64), nullable=False),
        sa.Column("judge", sa.String(length=100), nullable=False),
        sa.Column("profile_hash", sa.String(length=64), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("axes", JSON, nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("clipped", sa.Boolean(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(["sample_hash"], ["samples.hash"], name=op.f("fk_verdicts_sample_hash_samples")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdicts")),
    )
    op.create_index("ix_verdicts_cache_key_complete", "verdicts", ["cache_key", "complete"], unique=False)
    op.create_index(op.f("ix_verdicts_rubric_hash"), "verdicts", ["rubric_hash"], unique=False)
    op.create_index(op.f("ix_verdicts_sample_hash"), "verdicts", ["sample_hash"], unique=False)
    op.create_table(
        "ratings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rubric_hash", sa.String(length=64), nullable=False),
        sa.Column("sample_hash", sa.String(length=64), nullable=False),
        sa.Column("rater", sa.String(length=200), nullable=False),
        sa.Column("axis", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("run", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("verdict_id", sa.String(length=32), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["verdict_id"], ["verdicts.id"], name=op.f("fk_ratings_verdict_id_verdicts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint(
            "rubric_hash",
            "sample_hash",
            "rater",
            "axis",
            "run",
            name=op.f("uq_ratings_rubric_hash_sample_hash_rater_axis_run"),
        ),
    )
    op.create_table(
        "reward_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("base_model", sa.String(length=200), nullable=False),
        sa.Column("rubric_hash", sa.String(length=64), nullable=False),
        sa.Column("axis_keys", JSON, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.false(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_models")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_reward_models_name_version")),
    )


def downgrade() -> None:
    op.drop_table("reward_models")
    op.drop_table("ratings")
    op.drop_index(op.f("ix_verdicts_sample_hash"), table_name="verdicts")
    op.drop_index(op.f("ix_verdicts_rubric_hash"), table_name="verdicts")
    op.drop_index("ix_verdicts_cache_key_complete", table_name="verdicts")
    op.drop_table("verdicts")
    op.drop_table("samples")
    op.drop_table("rubrics")
