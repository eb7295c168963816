"""Prune: what each rule removes, and each protection that keeps a verdict. PostgreSQL and SQLite in turn."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.jobs.models import JobItemRow, JobRow
from judge.retention.errors import InvalidRetentionOption
from judge.retention.policy import PrunePolicy, parse_age
from judge.retention.service import plan_prune, prune
from judge.samples import Sample
from judge.store.models import VerdictRow
from judge.store.ratings_repository import Rating, RatingRepository
from judge.store.reward_models_repository import RewardModelRepository
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import Verdict
from tests.judge.store.factories import cache_key_for, make_sample, make_verdict

Sessions = async_sessionmaker[AsyncSession]
NOW = time.time()
DAY = 86_400.0
RUBRIC = "r" * 64


def _at(days_ago: float) -> float:
    return NOW - days_ago * DAY


def _policy(**kwargs: Any) -> PrunePolicy:
    return PrunePolicy(now=datetime.fromtimestamp(NOW, UTC), **kwargs)


def _verdict(sample: Sample, days_ago: float, *, complete: bool = True, judge: str = "deepseek") -> Verdict:
    verdict = make_verdict(sample, complete=complete, created_at=_at(days_ago))
    return verdict.model_copy(update={"judge": judge})


async def _store(sessions: Sessions, *verdicts: tuple[Verdict, Sample]) -> None:
    async with sessions() as session:
        await VerdictRepository(session).add_many(list(verdicts))
        await session.commit()


async def _ids(sessions: Sessions) -> set[str]:
    async with sessions() as session:
        return set(await session.scalars(select(VerdictRow.id)))


async def _job(sessions: Sessions, verdict_ids: list[str], *, finished_days_ago: float | None) -> str:
    job_id = uuid.uuid4().hex
    finished = datetime.fromtimestamp(_at(finished_days_ago), UTC) if finished_days_ago is not None else None
    async with sessions() as session:
        await session.execute(
            insert(JobRow).values(
                id=job_id, kind="filter", state="done" if finished else "running", rubric_ref="prmed@1",
                rubric_hash=RUBRIC, judge="deepseek", profile_hash="p" * 64, options={}, source="upload",
                stats={}, created_at=datetime.fromtimestamp(_at(200), UTC), finished_at=finished,
            )
        )  # fmt: skip
        await session.execute(
            insert(JobItemRow),
            [
                {"job_id": job_id, "line": i, "state": "kept", "record": '{"结果": "保留"}', "verdict_id": v}
                for i, v in enumerate(verdict_ids, start=1)
            ],
        )
        await session.commit()
    return job_id


def test_ages_read_like_an_operator_writes_them() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age(" 12h ") == timedelta(hours=12)
    assert parse_age("2w") == timedelta(weeks=2)
    with pytest.raises(InvalidRetentionOption) as bad:
        parse_age("三十天", field="failed-older-than")
    assert bad.value.field == "failed-older-than" and "三十天" in bad.value.message


async def test_failed_verdicts_go_after_their_age_and_the_dry_run_deletes_nothing(db_sessions: Sessions) -> None:
    sample = make_sample("医生，我头疼得厉害，吃了布洛芬也不管用。")
    old_failed = _verdict(sample, 40, complete=False)
    young_failed = _verdict(sample, 10, complete=False)
    complete_old = _verdict(sample, 50)
    await _store(db_sessions, (old_failed, sample), (young_failed, sample), (complete_old, sample))
    policy = _policy(failed_older_than=timedelta(days=30))

    planned = await plan_prune(db_sessions, policy)
    assert planned.dry_run and planned.rules["failed"].removable == 1
    assert await _ids(db_sessions) == {old_failed.id, young_failed.id, complete_old.id}  # nothing deleted
    if db_sessions.kw["bind"].dialect.name == "postgresql":
        assert planned.bytes_freed is not None and planned.bytes_freed > 0

    done = await prune(db_sessions, policy)
    assert done.deleted["failed"] == 1
    assert await _ids(db_sessions) == {young_failed.id, complete_old.id}


async def test_superseded_verdicts_go_and_the_judges_rating_stays(db_sessions: Sessions) -> None:
    sample = make_sample("孩子发烧三天了，39度，退烧药吃了又烧起来。")
    older, newer, newest = _verdict(sample, 9), _verdict(sample, 5), _verdict(sample, 1)
    # Same cache key, another judge name: not superseded by deepseek's verdicts (it is that judge's rating).
    other_judge = _verdict(sample, 7, judge="qwen")
    await _store(db_sessions, *[(v, sample) for v in (older, newer, newest, other_judge)])
    async with db_sessions() as session:
        before = await RatingRepository(session).query(RUBRIC)

    planned = await plan_prune(db_sessions, _policy(superseded=True))
    assert planned.rules["superseded"].selected == 2 == planned.rules["superseded"].removable
    await prune(db_sessions, _policy(superseded=True))

    assert await _ids(db_sessions) == {newest.id, other_judge.id}
    async with db_sessions() as session:
        assert await RatingRepository(session).query(RUBRIC) == before
    assert {r.verdict_id for r in before} == {newest.id, other_judge.id}


async def test_a_verdict_a_kept_job_refers_to_stays_and_one_a_pruned_job_referred_to_goes(
    db_sessions: Sessions,
) -> None:
    first, second = make_sample("胸口闷，喘不上气。"), make_sample("我老是失眠，心慌。")
    in_running_job, newest_first = _verdict(first, 60, complete=False), _verdict(first, 1)
    in_old_job, newest_second = _verdict(second, 60, complete=False), _verdict(second, 1)
    await _store(db_sessions, (in_running_job, first), (newest_first, first), (in_old_job, second),
                 (newest_second, second))  # fmt: skip
    await _job(db_sessions, [in_running_job.id], finished_days_ago=None)
    old_job = await _job(db_sessions, [in_old_job.id, newest_second.id], finished_days_ago=120)

    only_verdicts = _policy(failed_older_than=timedelta(days=30))
    counted = (await plan_prune(db_sessions, only_verdicts)).rules["failed"]
    assert (counted.selected, counted.by_jobs, counted.removable) == (2, 2, 0)

    both = _policy(failed_older_than=timedelta(days=30), jobs_finished_older_than=timedelta(days=90))
    planned = await plan_prune(db_sessions, both)
    assert planned.jobs.jobs == 1 and planned.jobs.items == 2
    assert planned.rules["failed"].by_jobs == 1 and planned.rules["failed"].removable == 1
    done = await prune(db_sessions, both)
    assert done.deleted == {"jobs": 1, "failed": 1}
    assert await _ids(db_sessions) == {in_running_job.id, newest_first.id, newest_second.id}
    async with db_sessions() as session:
        assert await session.scalar(select(func.count()).select_from(JobRow).where(JobRow.id == old_job)) == 0
        # The pruned job's items went with it (ON DELETE CASCADE), the running job's stayed.
        assert await session.scalar(select(func.count()).select_from(JobItemRow)) == 1


async def test_a_verdict_a_rating_refers_to_stays(db_sessions: Sessions) -> None:
    sample = make_sample("我妈血压180，头晕，要不要去急诊？")
    study_run, newest = _verdict(sample, 20), _verdict(sample, 2)
    await _store(db_sessions, (study_run, sample), (newest, sample))
    async with db_sessions() as session:
        # A stability study's run 1 keeps the verdict id it was read from.
        rating = Rating(RUBRIC, sample.hash, "judge:deepseek", "safety", 4.0, run=1, verdict_id=study_run.id)
        await RatingRepository(session).add_many([rating])
        await session.commit()

    planned = await plan_prune(db_sessions, _policy(superseded=True))
    assert (planned.rules["superseded"].by_ratings, planned.rules["superseded"].removable) == (1, 0)
    await prune(db_sessions, _policy(superseded=True))
    assert await _ids(db_sessions) == {study_run.id, newest.id}


async def test_a_verdict_in_a_reward_models_training_set_stays(db_sessions: Sessions) -> None:
    first, second = make_sample("肚子右下方疼，还发烧。"), make_sample("嗓子疼，咽口水都疼。")
    trained_on = _verdict(first, 30)
    # Written after the model was registered (a day and two days from now): not in its training set.
    after_training = _verdict(second, -1)
    await _store(db_sessions, (trained_on, first), (_verdict(first, 5), first), (after_training, second),
                 (_verdict(second, -2), second))  # fmt: skip
    async with db_sessions() as session:
        models = RewardModelRepository(session)
        common: dict[str, Any] = {"base_model": "tiny", "rubric_hash": RUBRIC, "axis_keys": ["safety"]}
        from_judge = {"data": {"judges": ["deepseek"], "jsonl": None}}
        await models.register("rm-prmed", path="/models/rm", config=from_judge, **common)
        # Trained on a labels file: protects no verdict.
        from_labels = {"data": {"judges": None, "jsonl": "标注.jsonl"}}
        await models.register("rm-labels", path="/models/rm2", config=from_labels, **common)
        await session.commit()

    planned = await plan_prune(db_sessions, _policy(superseded=True))
    assert planned.training_sets == 1
    counted = planned.rules["superseded"]
    assert (counted.selected, counted.by_training_sets, counted.removable) == (2, 1, 1)
    await prune(db_sessions, _policy(superseded=True))
    remaining = await _ids(db_sessions)
    assert trained_on.id in remaining
    assert after_training.id not in remaining


async def test_a_cache_hit_still_finds_its_verdict_after_a_prune(db_sessions: Sessions) -> None:
    sample = make_sample("医生，我怀孕了还能吃感冒药吗？")
    stale, fresh = _verdict(sample, 3), _verdict(sample, 1)
    await _store(db_sessions, (stale, sample), (fresh, sample))
    await prune(db_sessions, _policy(superseded=True, failed_older_than=timedelta(days=1)))
    async with db_sessions() as session:
        found = await VerdictRepository(session).find_complete([cache_key_for(sample)])
    assert found[cache_key_for(sample)].id == fresh.id
