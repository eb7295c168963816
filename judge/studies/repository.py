"""All SQL of rating studies. Like every repository it only ``flush()``es: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from judge.store.models import SampleRow, VerdictRow
from judge.studies.models import StudyItemRow, StudyRaterRow, StudyRow


@dataclass(frozen=True)
class RaterCounts:
    rater_id: int
    assigned: int
    done: int
    skipped: int
    last_active: datetime | None


class StudyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # --- studies and raters ---------------------------------------------------------------------------------

    async def add_study(self, row: StudyRow) -> None:
        self._session.add(row)
        await self._session.flush()

    async def study_by_name(self, name: str, *, for_update: bool = False) -> StudyRow | None:
        stmt = select(StudyRow).where(StudyRow.name == name)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self._session.scalars(stmt)).first()

    async def list_studies(self) -> list[StudyRow]:
        return list(await self._session.scalars(select(StudyRow).order_by(StudyRow.created_at)))

    async def add_rater(self, row: StudyRaterRow) -> StudyRaterRow:
        self._session.add(row)
        await self._session.flush()
        return row

    async def raters(self, study_id: str) -> list[StudyRaterRow]:
        stmt = select(StudyRaterRow).where(StudyRaterRow.study_id == study_id).order_by(StudyRaterRow.id)
        return list(await self._session.scalars(stmt))

    async def rater_by_token_hash(self, token_hash: str) -> tuple[StudyRaterRow, StudyRow] | None:
        stmt = (
            select(StudyRaterRow, StudyRow)
            .join(StudyRow, StudyRow.id == StudyRaterRow.study_id)
            .where(StudyRaterRow.token_hash == token_hash)
        )
        row = (await self._session.execute(stmt)).first()
        return (row[0], row[1]) if row is not None else None

    async def set_token_hash(self, rater_id: int, token_hash: str) -> None:
        await self._session.execute(
            update(StudyRaterRow).where(StudyRaterRow.id == rater_id).values(token_hash=token_hash)
        )
        await self._session.flush()

    # --- items ----------------------------------------------------------------------------------------------

    async def add_items(self, rows: Sequence[dict[str, Any]]) -> None:
        table = StudyItemRow.__table__
        for start in range(0, len(rows), 1000):
            await self._session.execute(table.insert(), list(rows[start : start + 1000]))  # type: ignore[attr-defined]
        await self._session.flush()

    async def item(self, rater_id: int, position: int, *, for_update: bool = False) -> StudyItemRow | None:
        stmt = select(StudyItemRow).where(StudyItemRow.rater_id == rater_id, StudyItemRow.position == position)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self._session.scalars(stmt)).first()

    async def first_position(self, rater_id: int, state: str) -> int | None:
        stmt = select(func.min(StudyItemRow.position)).where(
            StudyItemRow.rater_id == rater_id, StudyItemRow.state == state
        )
        return await self._session.scalar(stmt)

    async def positions(self, rater_id: int, state: str, *, limit: int = 1000) -> list[int]:
        stmt = (
            select(StudyItemRow.position)
            .where(StudyItemRow.rater_id == rater_id, StudyItemRow.state == state)
            .order_by(StudyItemRow.position)
            .limit(limit)
        )
        return list(await self._session.scalars(stmt))

    async def next_position(self, rater_id: int, after: int) -> int | None:
        """The first pending item after ``after``, wrapping round to the start."""
        later = await self._session.scalar(
            select(func.min(StudyItemRow.position)).where(
                StudyItemRow.rater_id == rater_id, StudyItemRow.state == "pending", StudyItemRow.position > after
            )
        )
        return later if later is not None else await self.first_position(rater_id, "pending")

    async def counts(self, study_id: str) -> list[RaterCounts]:
        """Assigned, done and skipped items per rater, and their last activity."""
        stmt = (
            select(
                StudyItemRow.rater_id,
                func.count(),
                func.count().filter(StudyItemRow.state == "done"),
                func.count().filter(StudyItemRow.state == "skipped"),
                func.max(StudyItemRow.updated_at),
            )
            .where(StudyItemRow.study_id == study_id)
            .group_by(StudyItemRow.rater_id)
        )
        return [RaterCounts(*row) for row in await self._session.execute(stmt)]

    async def rater_counts(self, rater_id: int) -> tuple[int, int, int]:
        stmt = select(
            func.count(),
            func.count().filter(StudyItemRow.state == "done"),
            func.count().filter(StudyItemRow.state == "skipped"),
        ).where(StudyItemRow.rater_id == rater_id)
        total, done, skipped = (await self._session.execute(stmt)).one()
        return int(total), int(done), int(skipped)

    async def seconds_done(self, study_id: str) -> dict[int, list[float]]:
        """Seconds spent per rated item, per rater (for medians)."""
        stmt = select(StudyItemRow.rater_id, StudyItemRow.seconds_spent).where(
            StudyItemRow.study_id == study_id, StudyItemRow.state == "done"
        )
        out: dict[int, list[float]] = {}
        for rater_id, seconds in await self._session.execute(stmt):
            out.setdefault(rater_id, []).append(float(seconds))
        return out

    async def items_with_raters(self, study_id: str) -> list[tuple[StudyItemRow, str]]:
        """Every assignment of the study with its rater's name, by rater and position."""
        stmt = (
            select(StudyItemRow, StudyRaterRow.name)
            .join(StudyRaterRow, StudyRaterRow.id == StudyItemRow.rater_id)
            .where(StudyItemRow.study_id == study_id)
            .order_by(StudyRaterRow.id, StudyItemRow.position)
        )
        return [(row[0], row[1]) for row in await self._session.execute(stmt)]

    async def sample_hashes(self, study_id: str) -> list[str]:
        stmt = select(StudyItemRow.sample_hash).where(StudyItemRow.study_id == study_id).distinct()
        return sorted(await self._session.scalars(stmt))

    async def flush(self) -> None:
        await self._session.flush()

    # --- samples and judges ---------------------------------------------------------------------------------

    async def sample_content(self, sample_hash: str) -> dict[str, Any] | None:
        return await self._session.scalar(select(SampleRow.content).where(SampleRow.hash == sample_hash))

    async def judge_scores(self, rubric_hash: str, sample_hash: str) -> dict[str, dict[str, int]]:
        """Each judge's ok axis scores in its newest complete verdict on the sample under the rubric.

        Read from the verdicts (what the judges said), not from the ratings table, whose storage of judges'
        ratings is an implementation detail of the agreement statistics.
        """
        stmt = (
            select(VerdictRow.judge, VerdictRow.axes)
            .where(
                VerdictRow.rubric_hash == rubric_hash,
                VerdictRow.sample_hash == sample_hash,
                VerdictRow.complete == true(),
            )
            .order_by(VerdictRow.created_at.desc(), VerdictRow.id.desc())
        )
        out: dict[str, dict[str, int]] = {}
        for judge, axes in await self._session.execute(stmt):
            if judge in out:
                continue
            out[judge] = {
                axis: int(result["score"])
                for axis, result in axes.items()
                if isinstance(result, dict) and result.get("status") == "ok" and result.get("score") is not None
            }
        return out
