"""Judges' ratings read from their verdicts, not stored a second time.

Rater ``judge:<profile>`` run 0 on a sample is the newest *complete* verdict of that profile on it under the
rubric (a partial verdict is judged again, so its axes would only mix with those of the next one): every ok
axis's integer score. Storing those scores again as one rating row per axis cost 13 rows, about 7.5 KB, per
verdict (79 % of the database); reading them from ``verdicts.axes`` costs one index range per rubric.

Rating rows of a judge rater at run 0 (a stability study's first run, ratings saved by hand) are *overrides*:
whichever is newer wins per (rater, sample), the rows (all of them) or the newest complete verdict. That is
what the old write path gave, where the verdict writer and a study overwrote the same rows in turn.

Nothing here imports numpy or the agreement package: the store's rating repository reads through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ARRAY, Float, String, bindparam, func, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from judge.db.base import JSONType, UTCDateTime
from judge.store.models import RatingRow, VerdictRow

JUDGE_PREFIX = "judge:"
JUDGE_RUN = 0

# PostgreSQL: the newest complete verdict per (sample, judge) by DISTINCT ON over the (rubric_hash, sample_hash,
# judge, created_at) index, and only the ok scores out of the JSONB (not the rationales): two arrays per verdict.
_NEWEST_PG = """
SELECT n.sample_hash, n.judge, n.id, n.created_at, k.axes, k.scores
FROM (
    SELECT DISTINCT ON (v.sample_hash, v.judge) v.sample_hash, v.judge, v.id, v.created_at, v.axes
    FROM verdicts AS v
    WHERE v.rubric_hash = :rubric_hash AND v.complete AND v.judge IN :judges
    ORDER BY v.sample_hash DESC, v.judge DESC, v.created_at DESC, v.id DESC
) AS n
CROSS JOIN LATERAL (
    SELECT array_agg(a.key) AS axes, array_agg((a.value ->> 'score')::float8) AS scores
    FROM jsonb_each(n.axes) AS a
    WHERE a.value ->> 'status' = 'ok' AND jsonb_typeof(a.value -> 'score') = 'number'
) AS k
"""

# SQLite (the embedded default, small stores): a window function picks the newest; the axes are parsed here.
_NEWEST_SQLITE = """
SELECT sample_hash, judge, id, created_at, axes
FROM (
    SELECT sample_hash, judge, id, created_at, axes,
           row_number() OVER (PARTITION BY sample_hash, judge ORDER BY created_at DESC, id DESC) AS newest
    FROM verdicts
    WHERE rubric_hash = :rubric_hash AND complete AND judge IN :judges
) AS ranked
WHERE newest = 1
"""


@dataclass(frozen=True, slots=True)
class JudgeScores:
    """The ok scores of one judge's newest complete verdict on one sample."""

    sample_hash: str
    judge: str  # the profile name, without the ``judge:`` prefix
    verdict_id: str
    created_at: datetime
    axes: Sequence[str]
    scores: Sequence[float]

    @property
    def rater(self) -> str:
        return JUDGE_PREFIX + self.judge


def judge_names(raters: Sequence[str]) -> list[str]:
    """The profile names of the ``judge:*`` raters among ``raters``."""
    return [r[len(JUDGE_PREFIX) :] for r in raters if r.startswith(JUDGE_PREFIX)]


async def judges_with_verdicts(session: AsyncSession, rubric_hash: str) -> list[str]:
    """``judge:<profile>`` for every profile with a complete verdict under the rubric."""
    stmt = (
        select(VerdictRow.judge)
        .where(VerdictRow.rubric_hash == rubric_hash, VerdictRow.complete == true())
        .distinct()
        .order_by(VerdictRow.judge)
    )
    return [JUDGE_PREFIX + name for name in await session.scalars(stmt)]


async def override_times(
    session: AsyncSession, rubric_hash: str, raters: Sequence[str]
) -> dict[tuple[str, str], datetime]:
    """(rater, sample) -> when rating rows of judge raters at run 0 were last written (see the module doc)."""
    judges = [r for r in raters if r.startswith(JUDGE_PREFIX)]
    if not judges:
        return {}
    stmt = (
        select(RatingRow.rater, RatingRow.sample_hash, func.max(RatingRow.created_at))
        .where(RatingRow.rubric_hash == rubric_hash, RatingRow.rater.in_(judges), RatingRow.run == JUDGE_RUN)
        .group_by(RatingRow.rater, RatingRow.sample_hash)
    )
    return {(rater, sample): when for rater, sample, when in await session.execute(stmt)}


async def newest_verdict_scores(
    session: AsyncSession, rubric_hash: str, judges: Sequence[str], *, batch: int = 20_000
) -> AsyncIterator[list[JudgeScores]]:
    """The newest complete verdict of each judge (profile name) on each sample under the rubric, in batches."""
    if not judges:
        return
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        stmt = text(_NEWEST_PG).columns(
            sample_hash=String(), judge=String(), id=String(), created_at=UTCDateTime(),
            axes=ARRAY(String()), scores=ARRAY(Float()),
        )  # fmt: skip
    else:
        stmt = text(_NEWEST_SQLITE).columns(
            sample_hash=String(), judge=String(), id=String(), created_at=UTCDateTime(), axes=JSONType
        )
    stmt = stmt.bindparams(bindparam("judges", expanding=True), rubric_hash=rubric_hash, judges=list(judges))
    # Axis-name lists repeat verdict after verdict: one shared tuple per distinct list.
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}
    result = await connection.stream(stmt.execution_options(yield_per=batch))
    async for rows in result.partitions():
        out: list[JudgeScores] = []
        for row in rows:
            if postgres:
                sample_hash, judge, verdict_id, created_at, axes, scores = row
                if not axes:
                    continue
                names = tuple(axes)
            else:
                sample_hash, judge, verdict_id, created_at, raw = row
                ok = [
                    (key, float(axis["score"]))
                    for key, axis in raw.items()
                    if isinstance(axis, dict) and axis.get("status") == "ok" and axis.get("score") is not None
                ]
                if not ok:
                    continue
                names = tuple(key for key, _ in ok)
                scores = [score for _, score in ok]
            out.append(JudgeScores(sample_hash, judge, verdict_id, created_at, shared.setdefault(names, names), scores))
        yield out


class OverrideFilter:
    """Decides, per (rater, sample), whether the rating rows or the newest complete verdict speak for a judge."""

    def __init__(self, overrides: dict[tuple[str, str], datetime]) -> None:
        self._overrides = overrides
        # Rows that a newer verdict has replaced.
        self.stale: set[tuple[str, str]] = set()

    def verdict_counts(self, scores: JudgeScores) -> bool:
        """True when the verdict is the judge's rating (no newer run-0 rows for the pair)."""
        written = self._overrides.get((scores.rater, scores.sample_hash))
        if written is None:
            return True
        if written >= scores.created_at:
            return False
        self.stale.add((scores.rater, scores.sample_hash))
        return True

    def row_counts(self, rater: str, sample_hash: str, run: int) -> bool:
        return not (run == JUDGE_RUN and (rater, sample_hash) in self.stale)
