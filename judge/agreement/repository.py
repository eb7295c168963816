"""SQL that agreement studies need beyond :class:`~judge.store.ratings_repository.RatingRepository`.

Like every repository it only ``flush()``es: the caller owns the transaction.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from judge.db.base import utcnow
from judge.samples import Sample
from judge.store.judge_ratings import JUDGE_RUN, OverrideFilter, judge_names, newest_verdict_scores, override_times
from judge.store.models import RatingRow, SampleRow, VerdictRow
from judge.store.ratings_repository import Rating, RatingRepository
from judge.store.statements import IN_CHUNK, INSERT_CHUNK, chunks, dialect_insert

_RATING_KEY = ("rubric_hash", "sample_hash", "rater", "axis", "run")


@dataclass
class RatingColumns:
    """Ratings as parallel columns; equal strings share one object, so a million rows cost a few dozen MB."""

    sample_hash: list[str] = field(default_factory=list)
    rater: list[str] = field(default_factory=list)
    axis: list[str] = field(default_factory=list)
    score: array[float] = field(default_factory=lambda: array("d"))
    run: array[int] = field(default_factory=lambda: array("q"))

    def __len__(self) -> int:
        return len(self.score)


@dataclass(frozen=True, slots=True)
class GroupScore:
    """One ok axis of a group-mode verdict: the record :func:`~judge.agreement.stability.position_effects` reads."""

    sample_hash: str
    group: str
    position: int  # 0-based display position
    axis: str
    score: float


class AgreementRepository:
    """Samples named by ratings, a rater's ratings on a set of samples, group-mode scores by position."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_samples(self, samples: Sequence[Sample]) -> None:
        """Store the content of rated samples (a no-op for those already stored)."""
        rows: dict[str, dict[str, Any]] = {}
        for sample in samples:
            rows.setdefault(sample.hash, {"hash": sample.hash, "content": sample.canonical()})
        now = utcnow()
        # Hash order, as VerdictRepository does: concurrent writers take row locks in one order.
        ordered = [{**rows[h], "created_at": now} for h in sorted(rows)]
        for chunk in chunks(ordered, INSERT_CHUNK):
            stmt = dialect_insert(self._session, SampleRow).values(list(chunk))
            await self._session.execute(stmt.on_conflict_do_nothing(index_elements=["hash"]))
        await self._session.flush()

    async def upsert_ratings(self, ratings: Iterable[Rating]) -> int:
        """Insert or update ratings (keyed by rubric, sample, rater, axis, run); returns how many were written."""
        return await RatingRepository(self._session).add_many(ratings)

    async def rating_columns(self, rubric_hash: str, raters: Sequence[str], *, batch: int = 50_000) -> RatingColumns:
        """Every rating of ``raters`` under the rubric, streamed in batches into columns, in no particular order.

        Judges' run-0 ratings are read from their newest complete verdicts (one row per verdict, the ok scores
        as arrays); other ratings from their rows. A study reads every judged sample's ratings (13 a verdict):
        one object per row, as :meth:`RatingRepository.query` builds, took 20 s and 400 MB for 780,000 rows.
        The report orders samples by hash itself (``RatingMatrix.from_columns(sort_samples=True)``), so no
        ORDER BY is needed here.
        """
        columns = RatingColumns()
        if not raters:
            return columns
        seen: dict[str, str] = {}
        share = seen.setdefault
        hashes, names, axes = columns.sample_hash, columns.rater, columns.axis
        scores, runs = columns.score, columns.run
        overrides = OverrideFilter(await override_times(self._session, rubric_hash, raters))
        async for verdicts in newest_verdict_scores(self._session, rubric_hash, judge_names(raters), batch=batch):
            for verdict in verdicts:
                if not overrides.verdict_counts(verdict):
                    continue
                n = len(verdict.axes)
                sample_hash = share(verdict.sample_hash, verdict.sample_hash)
                rater = share(verdict.rater, verdict.rater)
                hashes.extend([sample_hash] * n)
                names.extend([rater] * n)
                axes.extend(share(axis, axis) for axis in verdict.axes)
                scores.extend(verdict.scores)
                runs.extend([JUDGE_RUN] * n)
        stmt = select(RatingRow.sample_hash, RatingRow.rater, RatingRow.axis, RatingRow.score, RatingRow.run).where(
            RatingRow.rubric_hash == rubric_hash, RatingRow.rater.in_(list(raters))
        )
        # On the Core connection: the ORM session's result processing doubled the time per row.
        connection = await self._session.connection()
        result = await connection.stream(stmt.execution_options(yield_per=batch))
        async for rows in result.partitions():
            for sample_hash, rater, axis, score, run in rows:
                if overrides.stale and not overrides.row_counts(rater, sample_hash, run):
                    continue
                hashes.append(share(sample_hash, sample_hash))
                names.append(share(rater, rater))
                axes.append(share(axis, axis))
                scores.append(score)
                runs.append(run)
        return columns

    async def delete_ratings(self, rubric_hash: str, rater: str, sample_hashes: Sequence[str]) -> int:
        """Delete every run of ``rater`` on these samples under the rubric; returns how many rows went."""
        removed = 0
        for chunk in chunks(sorted(set(sample_hashes)), IN_CHUNK):
            result = await self._session.execute(
                delete(RatingRow)
                .where(
                    RatingRow.rubric_hash == rubric_hash,
                    RatingRow.rater == rater,
                    RatingRow.sample_hash.in_(list(chunk)),
                )
                .execution_options(synchronize_session=False)
            )
            removed += int(getattr(result, "rowcount", 0) or 0)
        await self._session.flush()
        return removed

    async def group_scores(self, rubric_hash: str, judge: str) -> list[GroupScore]:
        """Ok axis scores of a judge's complete group-mode verdicts, with the group and the display position.

        A verdict averaged over several display orders (``permutations``) gives one score per position it was
        shown at (``by_position``), so the per-position effect stays measurable after averaging.
        """
        stmt = (
            select(VerdictRow.sample_hash, VerdictRow.group_hash, VerdictRow.group_position, VerdictRow.axes)
            .where(
                VerdictRow.rubric_hash == rubric_hash,
                VerdictRow.judge == judge,
                VerdictRow.complete == true(),
                VerdictRow.group_hash.is_not(None),
                VerdictRow.group_position.is_not(None),
            )
            .order_by(VerdictRow.id)
        )
        out: list[GroupScore] = []
        for sample_hash, group_hash, position, axes in await self._session.execute(stmt):
            for axis, result in axes.items():
                score = result.get("score") if isinstance(result, dict) else None
                if not isinstance(result, dict) or result.get("status") != "ok" or score is None:
                    continue
                by_position = result.get("by_position")
                if isinstance(by_position, dict) and by_position:
                    for shown_at, given in by_position.items():
                        out.append(GroupScore(sample_hash, str(group_hash), int(shown_at) - 1, axis, float(given)))
                else:
                    out.append(GroupScore(sample_hash, str(group_hash), int(position) - 1, axis, float(score)))
        return out
