"""SQL for ratings (judges, humans, reward models) that agreement studies compare.

Repositories ``flush()`` and never commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from judge.db.base import utcnow
from judge.store.judge_ratings import (
    OverrideFilter,
    judge_names,
    judges_with_verdicts,
    newest_verdict_scores,
    override_times,
)
from judge.store.models import RatingRow
from judge.store.statements import dialect_insert


@dataclass(frozen=True, slots=True)
class Rating:
    """One score on one axis by one rater; ``run`` tells repeated ratings by the same rater apart."""

    rubric_hash: str
    sample_hash: str
    rater: str
    axis: str
    score: float
    run: int = 0
    verdict_id: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.rubric_hash, self.sample_hash, self.rater, self.axis, self.run)


_RATING_KEY = ["rubric_hash", "sample_hash", "rater", "axis", "run"]


class RatingRepository:
    """Ratings for agreement studies: judges, humans and reward models on the same samples."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_many(self, ratings: Iterable[Rating]) -> int:
        """Insert or update ratings (keyed by rubric, sample, rater, axis, run); returns how many were written.

        One constant statement with a parameter list (an executemany): it compiles once and is cached, where a
        VALUES list of 1,000 rows was compiled and prepared anew for every batch, ten times slower than storing
        the verdicts themselves.
        """
        # One statement may not touch a row twice (PostgreSQL refuses): the last rating of a key wins.
        latest = {rating.key: rating for rating in ratings}
        if not latest:
            return 0
        now = utcnow()
        rows = [
            {
                "rubric_hash": r.rubric_hash,
                "sample_hash": r.sample_hash,
                "rater": r.rater,
                "axis": r.axis,
                "score": r.score,
                "run": r.run,
                "verdict_id": r.verdict_id,
                "created_at": now,
            }
            for _, r in sorted(latest.items())  # key order: concurrent writers lock rows in one order
        ]
        stmt = dialect_insert(self._session, RatingRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(_RATING_KEY),
            set_={
                "score": stmt.excluded.score,
                "verdict_id": stmt.excluded.verdict_id,
                "created_at": stmt.excluded.created_at,
            },
        )
        await self._session.execute(stmt, rows)
        await self._session.flush()
        return len(rows)

    async def query(self, rubric_hash: str, raters: Sequence[str] | None = None) -> list[Rating]:
        """Every rating under a rubric, optionally only those of some raters, ordered by sample, axis, rater, run.

        Judges' run-0 ratings come from their newest complete verdicts (:mod:`judge.store.judge_ratings`).
        """
        selected = list(raters) if raters is not None else await self.raters(rubric_hash)
        overrides = OverrideFilter(await override_times(self._session, rubric_hash, selected))
        out: list[Rating] = []
        async for batch in newest_verdict_scores(self._session, rubric_hash, judge_names(selected)):
            for scores in batch:
                if overrides.verdict_counts(scores):
                    out += [
                        Rating(rubric_hash, scores.sample_hash, scores.rater, axis, score, 0, scores.verdict_id)
                        for axis, score in zip(scores.axes, scores.scores, strict=True)
                    ]
        stmt = select(
            RatingRow.rubric_hash,
            RatingRow.sample_hash,
            RatingRow.rater,
            RatingRow.axis,
            RatingRow.score,
            RatingRow.run,
            RatingRow.verdict_id,
        ).where(RatingRow.rubric_hash == rubric_hash)
        if raters is not None:
            stmt = stmt.where(RatingRow.rater.in_(selected))
        out += [
            Rating(*row)
            for row in await self._session.execute(stmt)
            if overrides.row_counts(row.rater, row.sample_hash, row.run)
        ]
        out.sort(key=lambda r: (r.sample_hash, r.axis, r.rater, r.run))
        return out

    async def raters(self, rubric_hash: str) -> list[str]:
        """Raters with ratings under the rubric: stored rows, and every judge with a complete verdict."""
        stmt = select(RatingRow.rater).where(RatingRow.rubric_hash == rubric_hash).distinct()
        stored = set(await self._session.scalars(stmt))
        return sorted(stored | set(await judges_with_verdicts(self._session, rubric_hash)))
