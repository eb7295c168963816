"""Column changes shared by revisions that add to or drop from ``verdicts``."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


def drop_columns(table: str, names: Sequence[str]) -> None:
    """Drop ``names`` from ``table`` in place.

    On SQLite (3.35+), ``ALTER TABLE … DROP COLUMN`` rather than batch mode: a batch rebuild drops the old table, and
    with foreign keys on (``judge.store.database`` turns them on) that deletes every row first, so each rating whose
    ``verdict_id`` points at a verdict is unlinked (ON DELETE SET NULL); it would also copy every row. The columns
    dropped this way carry no index or constraint, which SQLite's in-place drop would refuse.
    """
    if op.get_bind().dialect.name == "sqlite":
        for name in names:
            op.execute(sa.text(f'ALTER TABLE "{table}" DROP COLUMN "{name}"'))
        return
    for name in names:
        op.drop_column(table, name)
