"""Verdicts keep their whole usage: cached prompt tokens and hedged calls.

``cached_tokens`` (the part of ``prompt_tokens`` a provider served from its prefix cache) and ``hedges`` (extra
calls sent because an answer was slow) were counted in memory but not stored, so a verdict read back from the
database lost them.

Both columns are nullable with no default: NULL means "not recorded". A verdict stored before this revision was
never measured for either (its provider may well have served cached tokens), and a default of 0 would state a
measurement nobody made. Every verdict written from this revision on stores the real count (0 included). Adding a
nullable column without a default rewrites no row on PostgreSQL or SQLite, however large ``verdicts`` is.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.columns import drop_columns

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("cached_tokens", "hedges")


def upgrade() -> None:
    with op.batch_alter_table("verdicts") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    drop_columns("verdicts", tuple(reversed(_COLUMNS)))
