"""The Scorer end to end through the real OpenAI client, the loopback server and a real store."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.backends.factory import build_backend
from judge.cache import MemoryCache, RedisCache
from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.scorer import Scorer
from judge.store.database import create_engine, make_session_factory
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import AxisStatus, JudgeOutcome
from rubrics.schema import Rubric
from tests.judge.conftest import make_sample
from tests.support.openai_server import OpenAIServer, Slow, Verdict, garbage


def _profile(server: OpenAIServer, **overrides: object) -> JudgeProfile:
    fields: dict[str, object] = {
        "name": "loop",
        "model": "judge-model",
        "base_url": server.url,
        "concurrency": 8,
        "timeout_s": 5,
        "max_retries": 1,
    }
    fields.update(overrides)
    return JudgeProfile.model_validate(fields)


def _scorer(sessions: async_sessionmaker[AsyncSession] | None, cache: object | None = None) -> Scorer:
    return Scorer(cache=cache or MemoryCache(1000, 3600), sessions=sessions, backend_factory=build_backend)  # type: ignore[arg-type]


async def test_identical_samples_in_a_batch_are_judged_once(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    scorer = _scorer(db_sessions)
    a, b = make_sample(), make_sample(response="建议您先测个血压，再去社区医院看看。")
    batch = await scorer.score(tiny_rubric, _profile(openai_server), [a, b, a, a])
    await scorer.aclose()

    assert openai_server.calls == 2
    ids = [item.verdict.id for item in batch.items if item.verdict]
    assert len(ids) == 4 and ids[0] == ids[2] == ids[3] != ids[1]
    assert [item.sample.hash for item in batch.items] == [a.hash, b.hash, a.hash, a.hash]
    assert batch.usage.calls == 2
    async with db_sessions() as session:
        assert await VerdictRepository(session).count() == 2


async def test_concurrent_requests_for_one_sample_share_one_judge_call(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    openai_server.default = Slow(0.3)
    scorer = _scorer(db_sessions)
    profile = _profile(openai_server)
    sample = make_sample()
    first, second = await asyncio.gather(
        scorer.score(tiny_rubric, profile, [sample]), scorer.score(tiny_rubric, profile, [sample])
    )
    await scorer.aclose()

    assert openai_server.calls == 1
    assert first.items[0].verdict is not None and second.items[0].verdict is not None
    assert first.items[0].verdict.id == second.items[0].verdict.id


async def test_second_call_is_a_cache_hit_and_a_new_process_finds_it_in_the_store(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    profile = _profile(openai_server)
    sample = make_sample()
    scorer = _scorer(db_sessions)
    judged = (await scorer.score(tiny_rubric, profile, [sample])).items[0]
    again = (await scorer.score(tiny_rubric, profile, [sample])).items[0]
    await scorer.aclose()
    # A fresh scorer with an empty cache stands for another API replica or a restart.
    fresh = _scorer(db_sessions)
    from_store = (await fresh.score(tiny_rubric, profile, [sample])).items[0]
    from_cache = (await fresh.score(tiny_rubric, profile, [sample])).items[0]
    await fresh.aclose()

    assert openai_server.calls == 1
    assert (judged.cached, again.cached, from_store.cached) == (False, True, True)
    assert (again.source, from_store.source, from_cache.source) == ("cache", "store", "cache")
    assert judged.verdict is not None and from_store.verdict is not None
    assert from_store.verdict.id == judged.verdict.id
    assert from_store.verdict.axes == judged.verdict.axes
    assert all(a.status is AxisStatus.ok and a.score is not None for a in judged.verdict.axes.values())


async def test_cache_off_judges_again(
    openai_server: OpenAIServer, tiny_rubric: Rubric, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    scorer = _scorer(pg_sessions)
    profile = _profile(openai_server)
    sample = make_sample()
    await scorer.score(tiny_rubric, profile, [sample])
    item = (await scorer.score(tiny_rubric, profile, [sample], use_cache=False)).items[0]
    await scorer.aclose()
    assert openai_server.calls == 2 and item.cached is False


async def test_a_failed_verdict_is_stored_but_never_served_as_a_hit(
    openai_server: OpenAIServer, tiny_rubric: Rubric, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    openai_server.script(garbage(), garbage())  # the answer and its one repair re-ask
    scorer = _scorer(pg_sessions)
    profile = _profile(openai_server)
    sample = make_sample()
    failed = (await scorer.score(tiny_rubric, profile, [sample])).items[0]
    retried = (await scorer.score(tiny_rubric, profile, [sample])).items[0]
    await scorer.aclose()

    assert failed.verdict is not None and not failed.verdict.complete
    assert all(a.status is AxisStatus.parse_error and a.score is None for a in failed.verdict.axes.values())
    assert retried.cached is False and retried.verdict is not None and retried.verdict.complete
    assert openai_server.calls == 3
    async with pg_sessions() as session:
        repo = VerdictRepository(session)
        assert await repo.count(complete=False) == 1 and await repo.count(complete=True) == 1


async def test_deadline_returns_timeouts_and_the_late_verdict_becomes_a_hit(
    openai_server: OpenAIServer, tiny_rubric: Rubric, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    openai_server.script(Slow(0.6))
    scorer = _scorer(pg_sessions)
    profile = _profile(openai_server)
    slow, quick = make_sample(), make_sample(response="多喝热水，注意休息，如有加重及时就医。")
    batch = await scorer.score(tiny_rubric, profile, [slow, quick], deadline_s=0.3)
    assert batch.items[0].timed_out and batch.items[0].verdict is None
    assert not batch.items[1].timed_out

    await asyncio.sleep(0.6)  # let the slow judge call land; it is stored and cached
    again = (await scorer.score(tiny_rubric, profile, [slow])).items[0]
    await scorer.aclose()
    assert again.cached is True and again.verdict is not None and again.verdict.complete
    assert openai_server.calls == 2


class _BrokenBackend:
    """A backend with a bug: the Scorer must turn it into judge_error, never into a score."""

    def __init__(self, profile: JudgeProfile) -> None:
        self.profile = profile

    async def score(self, sample: Sample, rubric: Rubric) -> JudgeOutcome:
        raise RuntimeError("模型服务崩溃")

    async def aclose(self) -> None:
        return None


async def test_a_backend_crash_becomes_judge_error_on_every_axis(
    tiny_rubric: Rubric, sqlite_sessions: async_sessionmaker[AsyncSession]
) -> None:
    scorer = Scorer(cache=MemoryCache(10, 60), sessions=sqlite_sessions, backend_factory=_BrokenBackend)
    profile = JudgeProfile(name="broken", backend="openai", model="m")
    item = (await scorer.score(tiny_rubric, profile, [make_sample()])).items[0]
    await scorer.aclose()
    assert item.verdict is not None
    assert set(item.verdict.axes) == set(tiny_rubric.axis_keys)
    assert all(a.status is AxisStatus.judge_error and a.score is None for a in item.verdict.axes.values())
    assert item.verdict.error is not None and "模型服务崩溃" in item.verdict.error


async def test_redis_cache_serves_hits_across_scorers(
    openai_server: OpenAIServer, tiny_rubric: Rubric, redis_url: str, redis_prefix: str
) -> None:
    profile = _profile(openai_server)
    sample = make_sample()
    first = Scorer(cache=RedisCache(redis_url, redis_prefix, 60), sessions=None, backend_factory=build_backend)
    await first.score(tiny_rubric, profile, [sample])
    await first.aclose()
    second_cache = RedisCache(redis_url, redis_prefix, 60)
    second = Scorer(cache=second_cache, sessions=None, backend_factory=build_backend)
    item = (await second.score(tiny_rubric, profile, [sample])).items[0]
    await second.aclose()
    await second_cache.aclose()
    assert item.cached and item.source == "cache" and openai_server.calls == 1


@pytest.mark.parametrize("overrides", [{"temperature": 0.7}, {"model": "other-judge"}, {"mode": "isolated"}])
async def test_a_profile_change_that_alters_answers_misses_the_cache(
    openai_server: OpenAIServer, tiny_rubric: Rubric, overrides: dict[str, object]
) -> None:
    scorer = _scorer(None)
    sample = make_sample()
    await scorer.score(tiny_rubric, _profile(openai_server), [sample])
    calls = openai_server.calls
    # Connection-only changes (another URL for the same model, a higher concurrency) keep the key.
    hit = (await scorer.score(tiny_rubric, _profile(openai_server, concurrency=32, timeout_s=9), [sample])).items[0]
    miss = (await scorer.score(tiny_rubric, _profile(openai_server, **overrides), [sample])).items[0]
    await scorer.aclose()
    assert hit.cached is True
    assert miss.cached is False and openai_server.calls > calls


async def test_a_broken_store_is_logged_once_and_scoring_goes_on(
    openai_server: OpenAIServer, tiny_rubric: Rubric, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database nobody migrated: every lookup and write fails.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}")
    scorer = _scorer(make_session_factory(engine))
    profile = _profile(openai_server)
    with caplog.at_level(logging.WARNING, logger="judge"):
        first = (await scorer.score(tiny_rubric, profile, [make_sample()])).items[0]
        second = (await scorer.score(tiny_rubric, profile, [make_sample(response="请多喝水，按时吃药。")])).items[0]
    await scorer.aclose()
    await engine.dispose()
    assert first.verdict is not None and first.verdict.complete
    assert second.verdict is not None and second.verdict.complete
    lookups = [r for r in caplog.records if "verdict store:" in r.getMessage()]
    writes = [r for r in caplog.records if "verdict store (writes)" in r.getMessage()]
    assert len(lookups) == 1
    assert len(writes) == 1


async def test_verdicts_are_stored_with_the_rubrics_reward_and_pass(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    openai_server.script(Verdict(scores=5), garbage(), garbage())
    scorer = _scorer(db_sessions)
    profile = _profile(openai_server)
    good = (await scorer.score(tiny_rubric, profile, [make_sample()])).items[0].verdict
    bad = (await scorer.score(tiny_rubric, profile, [make_sample(response="请按时吃药。")])).items[0].verdict
    await scorer.aclose()
    assert good is not None and bad is not None
    assert (good.reward, good.passed) == (1.0, True)
    # Unparsable: no score, so neither a reward nor a pass decision is stored.
    assert (bad.reward, bad.passed) == (None, None)
    async with db_sessions() as session:
        repo = VerdictRepository(session)
        stored_good, stored_bad = await repo.get(good.id), await repo.get(bad.id)
    assert stored_good is not None and (stored_good.reward, stored_good.passed) == (1.0, True)
    assert stored_bad is not None and (stored_bad.reward, stored_bad.passed) == (None, None)
