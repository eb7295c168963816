"""Judges' ratings read from verdicts: the newest complete verdict, unless run-0 rows written later override it."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.store.ratings_repository import Rating, RatingRepository
from judge.store.verdicts_repository import VerdictRepository
from tests.judge.store.factories import make_sample, make_verdict

Sessions = async_sessionmaker[AsyncSession]
RUBRIC = "r" * 64


async def test_whichever_is_newer_speaks_for_run_0(db_sessions: Sessions) -> None:
    sample = make_sample("我家老人走路不稳，说话有点含糊，是不是中风？")
    first = make_verdict(sample, created_at=time.time() - 60)
    partial = make_verdict(sample, complete=False, created_at=time.time() - 30)  # never a rating
    async with db_sessions() as session:
        await VerdictRepository(session).add_many([(first, sample), (partial, sample)])
        await session.commit()

    async def ratings() -> dict[tuple[str, int], tuple[float, str | None]]:
        async with db_sessions() as session:
            rows = await RatingRepository(session).query(RUBRIC, ["judge:deepseek"])
        return {(r.axis, r.run): (r.score, r.verdict_id) for r in rows}

    assert await ratings() == {("emotion_perception", 0): (5.0, first.id), ("safety", 0): (4.0, first.id)}

    # A study's run 0 written after the verdict (one axis only, as a partial run gives): the rows speak.
    async with db_sessions() as session:
        await RatingRepository(session).add_many([Rating(RUBRIC, sample.hash, "judge:deepseek", "safety", 2.0, 0)])
        await session.commit()
    assert await ratings() == {("safety", 0): (2.0, None)}

    # A newer complete verdict replaces them, as the verdict writer's upsert used to.
    newest = make_verdict(sample, created_at=time.time() + 60)
    async with db_sessions() as session:
        await VerdictRepository(session).add_many([(newest, sample)])
        await session.commit()
    assert await ratings() == {("emotion_perception", 0): (5.0, newest.id), ("safety", 0): (4.0, newest.id)}
    async with db_sessions() as session:
        assert await RatingRepository(session).raters(RUBRIC) == ["judge:deepseek"]
