"""Group-mode verdicts: the group's composition hash, the sample's display position and the group size.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.columns import drop_columns

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: verdicts judged one sample at a time have no group; adding them rewrites nothing.
    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(sa.Column("group_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("group_position", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("group_size", sa.Integer(), nullable=True))


def downgrade() -> None:
    drop_columns("verdicts", ("group_size", "group_position", "group_hash"))
