"""Prune: plan what a policy removes (a dry run stops there) and remove it in one transaction.

What may go: failed verdicts past an age (kept that long for audit), superseded verdicts (a newer complete
verdict of the same cache key and judge exists), finished jobs past an age (their chunks and items with them).
What never goes: a verdict that a kept job's item, a rating, or a registered reward model's training set refers
to; a judge's newest complete verdict on a sample (its rating), which is never superseded; samples and rubrics.

Jobs go first, so a verdict referred to only by jobs that go in the same prune may go too; the dry run counts it
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.retention.policy import PrunePolicy
from judge.retention.repository import JobCount, RetentionRepository, RuleCount

RULES = ("failed", "superseded")


@dataclass(frozen=True)
class PruneReport:
    """What a prune removes (``dry_run``: would remove), with the bytes that frees, estimated from table sizes."""

    dry_run: bool
    rules: dict[str, RuleCount] = field(default_factory=dict)
    jobs: JobCount = JobCount()
    deleted: dict[str, int] = field(default_factory=dict)  # after a real run: rows deleted per rule and "jobs"
    bytes_by_table: dict[str, float | None] = field(default_factory=dict)
    training_sets: int = 0

    @property
    def verdicts(self) -> int:
        return sum(rule.removable for rule in self.rules.values())

    @property
    def bytes_freed(self) -> float | None:
        values = list(self.bytes_by_table.values())
        if not values or any(v is None for v in values):
            return None
        return float(sum(v for v in values if v is not None))


async def _plan(repo: RetentionRepository, policy: PrunePolicy) -> PruneReport:
    sets = await repo.training_sets()
    rules: dict[str, RuleCount] = {}
    if policy.failed_older_than is not None:
        rules["failed"] = await repo.count_rule("failed", sets)
    if policy.superseded:
        rules["superseded"] = await repo.count_rule("superseded", sets)
    jobs = await repo.count_jobs()
    verdicts = sum(rule.removable for rule in rules.values())
    sizes: dict[str, float | None] = {}
    for table, rows in (("verdicts", verdicts), ("jobs", jobs.jobs), ("job_items", jobs.items),
                        ("job_chunks", jobs.chunks)):  # fmt: skip
        if rows:
            per_row = await repo.bytes_per_row(table)
            sizes[table] = per_row * rows if per_row is not None else None
    return PruneReport(dry_run=True, rules=rules, jobs=jobs, bytes_by_table=sizes, training_sets=len(sets))


async def plan_prune(sessions: async_sessionmaker[AsyncSession], policy: PrunePolicy) -> PruneReport:
    """What ``policy`` would remove now; changes nothing."""
    async with sessions() as session:
        report = await _plan(RetentionRepository(session, policy), policy)
        await session.rollback()
    return report


async def prune(sessions: async_sessionmaker[AsyncSession], policy: PrunePolicy) -> PruneReport:
    """Remove what ``policy`` selects, in one transaction; the report counts what was deleted."""
    async with sessions() as session:
        repo = RetentionRepository(session, policy)
        await repo.lock_referrers()
        planned = await _plan(repo, policy)
        deleted = {"jobs": await repo.delete_jobs()}
        sets = await repo.training_sets()
        for rule in RULES:
            if rule in planned.rules:
                deleted[rule] = await repo.delete_verdicts(rule, sets)
        await session.commit()
    return PruneReport(
        dry_run=False,
        rules=planned.rules,
        jobs=planned.jobs,
        deleted=deleted,
        bytes_by_table=planned.bytes_by_table,
        training_sets=planned.training_sets,
    )
