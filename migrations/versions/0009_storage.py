"""Storage that grows gently: judges' ratings read from verdicts, indexes that queries use.

- Judge rating rows that are exactly the newest complete verdict's ok scores (same verdict id, same axes, same
  scores) are deleted: agreement studies now read them from ``verdicts.axes``. Any other judge rows (a
  stability study's runs, ratings saved by hand) stay, and so do human and reward-model ratings.
- verdicts: ``(rubric_hash, sample_hash, judge, created_at)`` replaces the single-column ``rubric_hash`` and
  ``sample_hash`` indexes; a partial index finds failed verdicts by age (retention).
- ratings: a partial index on ``verdict_id``, so deleting a verdict does not scan the table (ON DELETE SET NULL).

The downgrade writes the judges' rows back from the verdicts.

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-01 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Per dialect: the ok scores of the newest complete verdict of each (rubric, sample, judge), as rating rows.
_EXPECTED = {
    "postgresql": """
newest AS (
    SELECT DISTINCT ON (rubric_hash, sample_hash, judge) id, rubric_hash, sample_hash, judge, axes, created_at
    FROM verdicts
    WHERE complete
    ORDER BY rubric_hash, sample_hash, judge, created_at DESC, id DESC
),
expected AS (
    SELECT n.rubric_hash, n.sample_hash, 'judge:' || n.judge AS rater, n.id AS verdict_id, n.created_at,
           a.key AS axis, (a.value ->> 'score')::float8 AS score
    FROM newest AS n
    CROSS JOIN LATERAL jsonb_each(n.axes) AS a
    WHERE a.value ->> 'status' = 'ok' AND jsonb_typeof(a.value -> 'score') = 'number'
)""",
    "sqlite": """
newest AS (
    SELECT id, rubric_hash, sample_hash, judge, axes, created_at
    FROM (
        SELECT id, rubric_hash, sample_hash, judge, axes, created_at,
               row_number() OVER (
                   PARTITION BY rubric_hash, sample_hash, judge ORDER BY created_at DESC, id DESC
               ) AS rn
        FROM verdicts
        WHERE complete
    ) AS ranked
    WHERE rn = 1
),
expected AS (
    SELECT n.rubric_hash, n.sample_hash, 'judge:' || n.judge AS rater, n.id AS verdict_id, n.created_at,
           a.key AS axis, CAST(json_extract(a.value, '$.score') AS REAL) AS score
    FROM newest AS n, json_each(n.axes) AS a
    WHERE json_extract(a.value, '$.status') = 'ok' AND json_type(a.value, '$.score') IN ('integer', 'real')
)""",
}

# A (rubric, sample, judge) group of run-0 rows goes only as a whole, and only when every row matches the
# newest verdict's ok axis (verdict id and score) and the verdict has no ok axis without a row: a group kept in
# part would, as newer rows, hide the verdict's other axes.
_DELETE_DERIVABLE = """
WITH {expected},
expected_n AS (
    SELECT rubric_hash, sample_hash, rater, count(*) AS n FROM expected GROUP BY rubric_hash, sample_hash, rater
),
matched AS (
    SELECT r.rubric_hash, r.sample_hash, r.rater, count(*) AS n_rows, count(e.axis) AS n_match
    FROM ratings AS r
    LEFT JOIN expected AS e
      ON e.rubric_hash = r.rubric_hash AND e.sample_hash = r.sample_hash AND e.rater = r.rater
     AND e.axis = r.axis AND e.score = r.score AND e.verdict_id = r.verdict_id
    WHERE r.rater LIKE 'judge:%' AND r.run = 0
    GROUP BY r.rubric_hash, r.sample_hash, r.rater
),
derivable AS (
    SELECT m.rubric_hash, m.sample_hash, m.rater
    FROM matched AS m
    JOIN expected_n AS x ON x.rubric_hash = m.rubric_hash AND x.sample_hash = m.sample_hash AND x.rater = m.rater
    WHERE m.n_rows = m.n_match AND m.n_rows = x.n
)
DELETE FROM ratings
WHERE run = 0 AND rater LIKE 'judge:%' AND EXISTS (
    SELECT 1 FROM derivable AS g
    WHERE g.rubric_hash = ratings.rubric_hash AND g.sample_hash = ratings.sample_hash AND g.rater = ratings.rater
)
"""

# Groups with run-0 rows of their own (a study's run 0, rows kept above) are left as they are.
_RESTORE = """
WITH {expected}
INSERT INTO ratings (rubric_hash, sample_hash, rater, axis, score, run, verdict_id, created_at)
SELECT e.rubric_hash, e.sample_hash, e.rater, e.axis, e.score, 0, e.verdict_id, e.created_at
FROM expected AS e
WHERE NOT EXISTS (
    SELECT 1 FROM ratings AS r
    WHERE r.rubric_hash = e.rubric_hash AND r.sample_hash = e.sample_hash AND r.rater = e.rater AND r.run = 0
)
ON CONFLICT (rubric_hash, sample_hash, rater, axis, run) DO NOTHING
"""


def _dialect() -> str:
    name = op.get_bind().dialect.name
    if name not in _EXPECTED:
        raise NotImplementedError(f"no migration 0009 for dialect {name!r}")
    return name


def upgrade() -> None:
    op.create_index(
        "ix_verdicts_rubric_sample_judge", "verdicts", ["rubric_hash", "sample_hash", "judge", "created_at"]
    )
    op.drop_index("ix_verdicts_rubric_hash", table_name="verdicts")
    op.drop_index("ix_verdicts_sample_hash", table_name="verdicts")
    op.create_index(
        "ix_verdicts_failed_created_at",
        "verdicts",
        ["created_at"],
        postgresql_where=sa.text("NOT complete"),
        sqlite_where=sa.text("NOT complete"),
    )
    op.create_index(
        "ix_ratings_verdict_id",
        "ratings",
        ["verdict_id"],
        postgresql_where=sa.text("verdict_id IS NOT NULL"),
        sqlite_where=sa.text("verdict_id IS NOT NULL"),
    )
    op.execute(sa.text(_DELETE_DERIVABLE.format(expected=_EXPECTED[_dialect()])))


def downgrade() -> None:
    # A restored row is as old as its verdict, as the old writer's rows were (within a batch).
    op.execute(sa.text(_RESTORE.format(expected=_EXPECTED[_dialect()])))
    op.drop_index("ix_ratings_verdict_id", table_name="ratings")
    op.drop_index("ix_verdicts_failed_created_at", table_name="verdicts")
    op.create_index("ix_verdicts_sample_hash", "verdicts", ["sample_hash"])
    op.create_index("ix_verdicts_rubric_hash", "verdicts", ["rubric_hash"])
    op.drop_index("ix_verdicts_rubric_sample_judge", table_name="verdicts")
