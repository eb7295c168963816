"""All SQL of retention: which verdicts and jobs a policy selects, what protects a verdict, sizes, deletes.

Set-based throughout (one statement per rule, hash anti-joins rather than a query per row), so a dry run over a
million verdicts is a few scans, not a million round trips. Like every repository it only ``flush()``es.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, exists, false, func, not_, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from judge.jobs.models import JobChunkRow, JobItemRow, JobRow
from judge.jobs.schemas import ACTIVE_STATES
from judge.retention.policy import PrunePolicy
from judge.store.models import RatingRow, RewardModelRow, VerdictRow

V = VerdictRow


@dataclass(frozen=True)
class TrainingSet:
    """The verdicts a registered reward model was trained on: complete, of its rubric (and judges), before it."""

    model: str
    rubric_hash: str
    before: datetime
    judges: tuple[str, ...] | None  # None: every judge

    @classmethod
    def of(cls, name: str, version: int, rubric_hash: str, created_at: datetime, config: Any) -> TrainingSet | None:
        """From a registry row; None when the model was trained on a labels file, not on stored verdicts.

        A model registered without data information protects every complete verdict of its rubric made before
        it: when in doubt, keep.
        """
        data = config.get("data") if isinstance(config, dict) else None
        data = data if isinstance(data, dict) else {}
        judges = data.get("judges")
        if not judges and data.get("jsonl"):
            return None
        chosen = tuple(str(j) for j in judges) if isinstance(judges, list) and judges else None
        return cls(f"{name}@{version}", rubric_hash, created_at, chosen)


@dataclass(frozen=True)
class RuleCount:
    """One verdict rule: how many it selects, how many a reference protects (a verdict may count twice)."""

    selected: int = 0
    by_jobs: int = 0
    by_ratings: int = 0
    by_training_sets: int = 0
    removable: int = 0


@dataclass(frozen=True)
class JobCount:
    jobs: int = 0
    items: int = 0
    chunks: int = 0


class RetentionRepository:
    """Candidates, protections and deletes for one policy."""

    def __init__(self, session: AsyncSession, policy: PrunePolicy) -> None:
        self._session = session
        self._policy = policy

    # --- rules -------------------------------------------------------------------------------------------------

    def _failed(self) -> ColumnElement[bool]:
        before = self._policy.failed_before
        if before is None:
            return false()
        # "= false" matches the partial index on failed verdicts (WHERE NOT complete).
        return and_(V.complete == false(), V.created_at < before)

    def _superseded(self) -> ColumnElement[bool]:
        """A complete verdict with a newer complete one of the same cache key *and judge*: the cache never serves
        it and it is no judge's rating (that is the judge's newest complete verdict on the sample)."""
        if not self._policy.superseded:
            return false()
        newer = aliased(VerdictRow)
        return and_(
            V.complete == true(),
            exists().where(
                newer.cache_key == V.cache_key,
                newer.complete == true(),
                newer.judge == V.judge,
                or_(newer.created_at > V.created_at, and_(newer.created_at == V.created_at, newer.id > V.id)),
            ),
        )

    def _job_pruned(self, job: type[JobRow] | Any = JobRow) -> ColumnElement[bool]:
        before = self._policy.jobs_finished_before
        if before is None:
            return false()
        return and_(job.state.not_in(ACTIVE_STATES), job.finished_at.is_not(None), job.finished_at < before)

    # --- protections -------------------------------------------------------------------------------------------

    def _referenced_by_kept_jobs(self) -> ColumnElement[bool]:
        """A job item of a job this prune keeps names the verdict (its output record points at it)."""
        kept = not_(self._job_pruned()) if self._policy.jobs_finished_before is not None else true()
        return exists(
            select(JobItemRow.job_id)
            .join(JobRow, JobRow.id == JobItemRow.job_id)
            .where(JobItemRow.verdict_id == V.id, kept)
        )

    @staticmethod
    def _referenced_by_ratings() -> ColumnElement[bool]:
        return exists().where(RatingRow.verdict_id == V.id)

    @staticmethod
    def _in_training_sets(sets: Sequence[TrainingSet]) -> ColumnElement[bool]:
        clauses = [
            and_(
                V.rubric_hash == s.rubric_hash,
                V.complete == true(),
                V.created_at <= s.before,
                V.judge.in_(list(s.judges)) if s.judges is not None else true(),
            )
            for s in sets
        ]
        return or_(false(), *clauses)

    async def training_sets(self) -> list[TrainingSet]:
        rows = await self._session.execute(
            select(
                RewardModelRow.name,
                RewardModelRow.version,
                RewardModelRow.rubric_hash,
                RewardModelRow.created_at,
                RewardModelRow.config,
            )
        )
        return [s for row in rows if (s := TrainingSet.of(*row)) is not None]

    # --- counting ----------------------------------------------------------------------------------------------

    async def count_rule(self, rule: str, sets: Sequence[TrainingSet]) -> RuleCount:
        """``rule``: ``failed`` or ``superseded``."""
        selected = self._failed() if rule == "failed" else self._superseded()
        jobs, ratings, training = (
            self._referenced_by_kept_jobs(),
            self._referenced_by_ratings(),
            self._in_training_sets(sets),
        )

        def flag(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        stmt = select(
            func.count(),
            flag(jobs),
            flag(ratings),
            flag(training),
            flag(and_(not_(jobs), not_(ratings), not_(training))),
        ).where(selected)
        row = (await self._session.execute(stmt)).one()
        return RuleCount(*(int(v) for v in row))

    async def count_jobs(self) -> JobCount:
        if self._policy.jobs_finished_before is None:
            return JobCount()
        doomed = select(JobRow.id).where(self._job_pruned()).scalar_subquery()
        jobs = await self._session.scalar(select(func.count()).select_from(JobRow).where(self._job_pruned()))
        items = await self._session.scalar(select(func.count()).where(JobItemRow.job_id.in_(doomed)))
        chunks = await self._session.scalar(select(func.count()).where(JobChunkRow.job_id.in_(doomed)))
        return JobCount(int(jobs or 0), int(items or 0), int(chunks or 0))

    async def bytes_per_row(self, table: str) -> float | None:
        """Average bytes a row of ``table`` takes with its indexes and TOAST (PostgreSQL); None elsewhere."""
        if self._session.get_bind().dialect.name != "postgresql":
            return None
        size, estimate = (
            await self._session.execute(
                text(
                    "SELECT pg_total_relation_size(c.oid), c.reltuples FROM pg_class c "
                    "WHERE c.oid = to_regclass(:table)"
                ),
                {"table": table},
            )
        ).one()
        rows = float(estimate) if estimate and estimate > 0 else None
        if rows is None:  # never analysed: count
            rows = float(await self._session.scalar(text(f'SELECT count(*) FROM "{table}"')) or 0)
        return float(size) / rows if rows else 0.0

    # --- deleting ----------------------------------------------------------------------------------------------

    async def lock_referrers(self) -> None:
        """Hold off writers of what protects a verdict until the prune commits (PostgreSQL; SQLite has one writer).

        SHARE mode lets readers through; a job item or rating written meanwhile would otherwise name a verdict
        that the delete, which checked before it was committed, removes.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(text("LOCK TABLE job_items, ratings, reward_models IN SHARE MODE"))

    async def delete_jobs(self) -> int:
        """Delete the finished jobs the policy selects; their chunks and items go with them (ON DELETE CASCADE)."""
        if self._policy.jobs_finished_before is None:
            return 0
        result = await self._session.execute(
            delete(JobRow).where(self._job_pruned()).execution_options(synchronize_session=False)
        )
        await self._session.flush()
        return int(getattr(result, "rowcount", 0) or 0)

    async def delete_verdicts(self, rule: str, sets: Sequence[TrainingSet]) -> int:
        """Delete the unprotected verdicts of ``rule``; the protections are checked in the same statement."""
        selected = self._failed() if rule == "failed" else self._superseded()
        stmt = delete(V).where(
            selected,
            not_(self._referenced_by_kept_jobs()),
            not_(self._referenced_by_ratings()),
            not_(self._in_training_sets(sets)),
        )
        result = await self._session.execute(stmt.execution_options(synchronize_session=False))
        await self._session.flush()
        return int(getattr(result, "rowcount", 0) or 0)
