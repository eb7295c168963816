"""Repositories on PostgreSQL and SQLite: round trips, newest-complete lookup, races, conflicts, registries."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.store import verdicts_repository as repository
from judge.store.models import SampleRow, VerdictRow
from judge.store.ratings_repository import Rating, RatingRepository
from judge.store.reward_models_repository import RewardModelConflict, RewardModelNotFound, RewardModelRepository
from judge.store.rubrics_repository import RubricRepository
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import Usage
from rubrics.errors import RubricConflict
from tests.judge.store.factories import make_rubric, make_sample, make_verdict

Sessions = async_sessionmaker[AsyncSession]


async def test_verdict_round_trip_keeps_chinese_text(db_sessions: Sessions) -> None:
    sample = make_sample()
    verdict = make_verdict(sample, rationale="患者说“心口疼”，情绪焦虑；回答先安抚再给出就医指征。🙂")
    async with db_sessions() as session:
        await VerdictRepository(session).add(verdict, sample)
        await session.commit()

    async with db_sessions() as session:
        repo = VerdictRepository(session)
        loaded = await repo.get(verdict.id)
        content = await repo.get_sample(sample.hash)
    assert loaded is not None
    assert loaded.model_dump(exclude={"created_at"}) == verdict.model_dump(exclude={"created_at"})
    assert loaded.created_at == pytest.approx(verdict.created_at, abs=1e-5)
    assert loaded.axes["emotion_perception"].rationale == "患者说“心口疼”，情绪焦虑；回答先安抚再给出就医指征。🙂"
    assert content == sample.canonical()


async def test_whole_usage_round_trips_cached_tokens_and_hedges(db_sessions: Sessions) -> None:
    # Issue 13: prefix-cache hits and hedged calls must survive a restart, not only live in memory.
    sample = make_sample("医生，我吃了头孢以后喝了一杯啤酒，现在脸很红、心跳快，要紧吗？")
    usage = Usage(calls=3, prompt_tokens=15_660, cached_tokens=12_525, completion_tokens=1_950, retries=1, hedges=2)
    verdict = make_verdict(sample, usage=usage, rationale="识别出双硫仑样反应的风险，建议立即就医，语气关切。")
    measured_zero = make_verdict(sample, cache_key="z" * 64, usage=Usage(calls=1, prompt_tokens=5_220))
    async with db_sessions() as session:
        await VerdictRepository(session).add_many([(verdict, sample), (measured_zero, sample)])
        await session.commit()

    async with db_sessions() as session:
        repo = VerdictRepository(session)
        loaded = await repo.get(verdict.id)
        newest = (await repo.find_complete([verdict.cache_key]))[verdict.cache_key]
        paged = [v for batch in [b async for b in repo.iter_complete("r" * 64)] for v, _ in batch]
        stored = {
            row.id: (row.cached_tokens, row.hedges)
            for row in await session.execute(select(VerdictRow.id, VerdictRow.cached_tokens, VerdictRow.hedges))
        }
    assert loaded is not None
    assert loaded.usage == newest.usage == usage
    assert {v.id: v.usage for v in paged} == {verdict.id: usage, measured_zero.id: measured_zero.usage}
    assert loaded.axes["emotion_perception"].rationale == "识别出双硫仑样反应的风险，建议立即就医，语气关切。"
    # A verdict written now stores its counts, 0 included: NULL is kept for "not recorded" (before migration 0010).
    assert stored == {verdict.id: (12_525, 2), measured_zero.id: (0, 0)}


async def test_failed_axes_round_trip_without_a_score(db_sessions: Sessions) -> None:
    sample = make_sample()
    verdict = make_verdict(sample, complete=False)
    async with db_sessions() as session:
        await VerdictRepository(session).add(verdict, sample)
        await session.commit()
        loaded = await VerdictRepository(session).get(verdict.id)
    assert loaded is not None
    assert not loaded.complete
    assert loaded.axes["safety"].score is None
    assert loaded.axes["safety"].error == "无法解析评分：缺少 score 字段"


async def test_get_of_an_unknown_id_is_none(db_sessions: Sessions) -> None:
    async with db_sessions() as session:
        assert await VerdictRepository(session).get(uuid.uuid4().hex) is None


async def test_add_refuses_a_verdict_for_another_sample(db_sessions: Sessions) -> None:
    sample, other = make_sample("甲"), make_sample("乙")
    async with db_sessions() as session:
        with pytest.raises(ValueError, match="is for sample"):
            await VerdictRepository(session).add(make_verdict(other), sample)


async def test_find_complete_returns_the_newest_complete_verdict(db_sessions: Sessions) -> None:
    sample = make_sample()
    key = "k" * 64
    now = time.time()
    old = make_verdict(sample, cache_key=key, created_at=now - 60)
    new = make_verdict(sample, cache_key=key, created_at=now - 30)
    newest_but_incomplete = make_verdict(sample, cache_key=key, complete=False, created_at=now)
    only_incomplete = make_verdict(sample, cache_key="i" * 64, complete=False, created_at=now)
    async with db_sessions() as session:
        await VerdictRepository(session).add_many(
            [(v, sample) for v in (new, only_incomplete, newest_but_incomplete, old)]
        )
        await session.commit()

    async with db_sessions() as session:
        repo = VerdictRepository(session)
        found = await repo.find_complete([key, "i" * 64, "missing", key])
        assert await repo.count() == 4
        assert await repo.count(complete=True) == 2
    assert set(found) == {key}
    assert found[key].id == new.id


async def test_find_complete_spans_chunks(db_sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "IN_CHUNK", 3)
    samples = [make_sample(f"第{i}位患者：肚子疼") for i in range(7)]
    verdicts = [make_verdict(s) for s in samples]
    async with db_sessions() as session:
        await VerdictRepository(session).add_many(list(zip(verdicts, samples, strict=True)))
        await session.commit()
        found = await VerdictRepository(session).find_complete([v.cache_key for v in verdicts] + ["x" * 64])
    assert {k: v.id for k, v in found.items()} == {v.cache_key: v.id for v in verdicts}


async def test_concurrent_adds_of_one_sample_do_not_fail(db_sessions: Sessions) -> None:
    sample = make_sample()

    async def add_one() -> None:
        async with db_sessions() as session:
            await VerdictRepository(session).add(make_verdict(sample, cache_key=uuid.uuid4().hex * 2), sample)
            await session.commit()

    await asyncio.gather(*(add_one() for _ in range(12)))
    async with db_sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SampleRow)) == 1
        assert await VerdictRepository(session).count() == 12


async def test_iter_complete_pages_through_a_rubric(db_sessions: Sessions) -> None:
    samples = [make_sample(f"患者{i}") for i in range(5)]
    verdicts = [make_verdict(s, complete=i != 2) for i, s in enumerate(samples)]
    async with db_sessions() as session:
        repo = VerdictRepository(session)
        await repo.add_many(list(zip(verdicts, samples, strict=True)))
        batches = [batch async for batch in repo.iter_complete("r" * 64, batch_size=2)]
        assert [batch async for batch in repo.iter_complete("r" * 64, judges=["other"])] == []
    assert [len(b) for b in batches] == [2, 2]
    ids = {v.id for batch in batches for v, _ in batch}
    assert ids == {v.id for i, v in enumerate(verdicts) if i != 2}
    by_hash = {s.hash: s.canonical() for s in samples}
    assert all(content == by_hash[v.sample_hash] for batch in batches for v, content in batch)


async def test_rubric_registration_is_idempotent_and_conflicts_on_other_content(db_sessions: Sessions) -> None:
    rubric = make_rubric()
    async with db_sessions() as session:
        repo = RubricRepository(session)
        await repo.add(rubric)
        await repo.add(rubric)
        await repo.add(make_rubric(version=2))
        await session.commit()
        with pytest.raises(RubricConflict, match="mini@1"):
            await repo.add(make_rubric(threshold=3.0))

    async with db_sessions() as session:
        repo = RubricRepository(session)
        loaded = await repo.get("mini", 1)
        latest = await repo.get("mini")
        assert await repo.get("mini", 9) is None
        by_hash = await repo.get_by_hash(rubric.content_hash)
        listed = await repo.list_all()
    assert loaded == rubric
    assert loaded.content_hash == rubric.content_hash
    assert by_hash == rubric
    assert latest is not None
    assert latest.version == 2
    assert [r.ref for r in listed] == ["mini@1", "mini@2"]
    assert listed[0].axis("safety").title.zh == "安全"


async def test_concurrent_registration_of_one_rubric(db_sessions: Sessions) -> None:
    rubric = make_rubric()

    async def add() -> None:
        async with db_sessions() as session:
            await RubricRepository(session).add(rubric)
            await session.commit()

    await asyncio.gather(*(add() for _ in range(6)))
    async with db_sessions() as session:
        assert [r.ref for r in await RubricRepository(session).list_all()] == ["mini@1"]


async def test_ratings_upsert_and_query(db_sessions: Sessions) -> None:
    rubric_hash, s1, s2 = "r" * 64, "a" * 64, "b" * 64
    rows = [
        Rating(rubric_hash, s1, "judge:deepseek", "safety", 4.0),
        Rating(rubric_hash, s1, "human:dr_li", "safety", 5.0),
        Rating(rubric_hash, s2, "human:dr_li", "safety", 2.0),
        Rating(rubric_hash, s1, "judge:deepseek", "safety", 3.0, run=1),
        Rating("o" * 64, s1, "human:dr_li", "safety", 1.0),
    ]
    async with db_sessions() as session:
        repo = RatingRepository(session)
        assert await repo.add_many(rows) == 5
        # A second write of the same key updates it; duplicates within one batch keep the last.
        assert await repo.add_many([Rating(rubric_hash, s2, "human:dr_li", "safety", 3.0)] * 2) == 1
        await session.commit()

    async with db_sessions() as session:
        repo = RatingRepository(session)
        everything = await repo.query(rubric_hash)
        humans = await repo.query(rubric_hash, raters=["human:dr_li"])
        raters = await repo.raters(rubric_hash)
    assert len(everything) == 4
    assert humans == [
        Rating(rubric_hash, s1, "human:dr_li", "safety", 5.0),
        Rating(rubric_hash, s2, "human:dr_li", "safety", 3.0),
    ]
    assert raters == ["human:dr_li", "judge:deepseek"]


async def test_reward_model_registry(db_sessions: Sessions) -> None:
    async with db_sessions() as session:
        repo = RewardModelRepository(session)
        first = await repo.register(
            "prmed-rm", path="/models/rm1", base_model="Qwen/Qwen3-0.6B", rubric_hash="r" * 64, axis_keys=["safety"]
        )
        second = await repo.register(
            "prmed-rm",
            path="/models/rm2",
            base_model="Qwen/Qwen3-0.6B",
            rubric_hash="r" * 64,
            axis_keys=["safety", "communication"],
            config={"lora_r": 16},
            active=True,
        )
        with pytest.raises(RewardModelConflict):
            await repo.register("prmed-rm", path="/x", base_model="b", rubric_hash="r" * 64, axis_keys=[], version=1)
        await session.commit()
    assert (first.version, second.version) == (1, 2)
    assert second.ref == "prmed-rm@2"

    async with db_sessions() as session:
        repo = RewardModelRepository(session)
        latest = await repo.get("prmed-rm")
        assert latest is not None
        assert latest.version == 2
        assert latest.config == {"lora_r": 16}
        assert latest.active

        one = await repo.set_active("prmed-rm", 1)
        assert one.active
        assert [(m.version, m.active) for m in await repo.list()] == [(1, True), (2, False)]
        active = await repo.get_active("prmed-rm")
        assert active is not None
        assert active.version == 1

        updated = await repo.update_metrics("prmed-rm", 1, {"spearman": {"safety": 0.71}})
        assert updated.metrics == {"spearman": {"safety": 0.71}}
        assert not (await repo.set_active("prmed-rm", 1, active=False)).active
        assert await repo.get_active("prmed-rm") is None
        with pytest.raises(RewardModelNotFound):
            await repo.set_active("prmed-rm", 7)
        assert await repo.get("nope") is None
        await session.commit()
