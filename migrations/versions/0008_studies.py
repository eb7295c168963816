"""Rating studies: studies, their raters (hashed tokens) and assignments (drafts, comments, skips, time).

Scores are not stored here: they are ``human:<name>`` rows of the existing ``ratings`` table.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("rubric_ref", sa.String(length=120), nullable=False),
        sa.Column("rubric_hash", sa.String(length=64), nullable=False),
        sa.Column("per_sample", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'open'"), nullable=False),
        sa.Column("seed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _now("created_at"),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_studies_name")),
    )
    op.create_table(
        "study_raters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=190), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _now("created_at"),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_raters_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_raters")),
        sa.UniqueConstraint("study_id", "name", name=op.f("uq_study_raters_study_id_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_study_raters_token_hash")),
    )
    op.create_table(
        "study_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(length=32), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("sample_hash", sa.String(length=64), nullable=False),
        sa.Column("sample_id", sa.String(length=512), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("draft", JSON, nullable=False),
        sa.Column("scores", JSON, nullable=False),
        sa.Column("comments", JSON, nullable=False),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("seconds_spent", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["rater_id"], ["study_raters.id"], name=op.f("fk_study_items_rater_id_study_raters"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["sample_hash"], ["samples.hash"], name=op.f("fk_study_items_sample_hash_samples")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_items_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_items")),
        sa.UniqueConstraint("rater_id", "position", name=op.f("uq_study_items_rater_id_position")),
        sa.UniqueConstraint("rater_id", "sample_hash", name=op.f("uq_study_items_rater_id_sample_hash")),
    )
    op.create_index("ix_study_items_study_id_state", "study_items", ["study_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_study_items_study_id_state", table_name="study_items")
    op.drop_table("study_items")
    op.drop_table("study_raters")
    op.drop_table("studies")
