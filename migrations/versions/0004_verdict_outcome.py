"""Verdicts keep their reward and pass decision under the rubric's own policy.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.columns import drop_columns

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: an unscored axis leaves both null, and verdicts stored before this revision have neither.
    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(sa.Column("reward", sa.Float(), nullable=True))
        batch.add_column(sa.Column("passed", sa.Boolean(), nullable=True))


def downgrade() -> None:
    drop_columns("verdicts", ("passed", "reward"))
