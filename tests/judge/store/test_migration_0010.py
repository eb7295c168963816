"""Migration 0010 adds ``verdicts.cached_tokens`` and ``hedges``; verdicts stored before it read as not recorded.

A database at revision 0009 holds a verdict the old writer stored and a rating that refers to it. After the
upgrade the row is unchanged, its new columns are NULL ("not recorded", not a measured 0) and it reads back with
a usage of 0 for them; a verdict written after the upgrade keeps its counts. The downgrade drops the columns and
keeps every row and every rating's link to its verdict. On PostgreSQL (a database of the test's own) and SQLite.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from alembic import command
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from judge.store import migrate
from judge.store.database import create_engine, make_session_factory
from judge.store.models import RatingRow, SampleRow, VerdictRow
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import Usage
from tests.judge.store.factories import make_sample, make_verdict

T0 = datetime(2026, 11, 1, tzinfo=UTC)
RATIONALE = "患者描述“胸口像压了块石头”，回答识别出心梗风险并建议立即拨打120。"


def _columns(connection: Connection) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns("verdicts")}


async def _downgrade(engine: AsyncEngine, url: str, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(migrate.make_config(url, sync), revision))


async def test_old_verdicts_read_as_not_recorded_and_new_ones_keep_their_usage(fresh_url: str) -> None:
    await migrate.upgrade(fresh_url, "0009")
    sample = make_sample("医生，我爸爸胸口像压了块石头，出冷汗，已经二十分钟了。")
    old: dict[str, Any] = {
        "id": uuid.uuid4().hex, "cache_key": "k" * 64, "sample_hash": sample.hash, "rubric_ref": "prmed@1",
        "rubric_hash": "r" * 64, "judge": "deepseek", "profile_hash": "p" * 64, "complete": True,
        "axes": {"safety": {"score": 5, "status": "ok", "rationale": RATIONALE}}, "calls": 1,
        "prompt_tokens": 5_220, "completion_tokens": 650, "retries": 1, "error": None, "latency_ms": 900.0,
        "clipped": False, "created_at": T0,
    }  # fmt: skip
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(SampleRow), [{"hash": sample.hash, "content": sample.canonical(), "created_at": T0}]
            )
            await conn.execute(insert(VerdictRow), [old])
            await conn.execute(
                insert(RatingRow),
                [{"rubric_hash": "r" * 64, "sample_hash": sample.hash, "rater": "human:王医生", "axis": "safety",
                  "score": 5.0, "run": 0, "verdict_id": old["id"], "created_at": T0}],
            )  # fmt: skip
        await engine.dispose()

        await migrate.upgrade(fresh_url, "0010")
        async with engine.connect() as conn:
            assert {"cached_tokens", "hedges"} <= await conn.run_sync(_columns)
            query = text("SELECT cached_tokens, hedges, prompt_tokens FROM verdicts WHERE id = :id")
            raw = (await conn.execute(query, {"id": old["id"]})).one()
        # Not measured before 0010: NULL, not a claimed 0.
        assert tuple(raw) == (None, None, 5_220)

        fresh = make_verdict(
            sample,
            cache_key="n" * 64,
            usage=Usage(calls=2, prompt_tokens=10_440, cached_tokens=8_350, completion_tokens=1_300, hedges=1),
        )
        sessions = make_session_factory(engine)
        async with sessions() as session:
            await VerdictRepository(session).add(fresh, sample)
            await session.commit()
        async with sessions() as session:
            repo = VerdictRepository(session)
            old_read, fresh_read = await repo.get(old["id"]), await repo.get(fresh.id)
        assert old_read is not None and fresh_read is not None
        # Usage counts are numbers: "not recorded" reads as 0 there (the export keeps the NULL).
        assert old_read.usage == Usage(calls=1, prompt_tokens=5_220, completion_tokens=650, retries=1)
        assert old_read.axes["safety"].rationale == RATIONALE
        assert fresh_read.usage == fresh.usage

        await _downgrade(engine, fresh_url, "0009")
        async with engine.connect() as conn:
            assert not {"cached_tokens", "hedges"} & await conn.run_sync(_columns)
            ids = set((await conn.scalars(select(VerdictRow.id))).all())
            links = (await conn.execute(text("SELECT verdict_id FROM ratings"))).scalars().all()
        assert ids == {old["id"], fresh.id}
        # The downgrade must not rebuild the table: on SQLite with foreign keys on, that would have unlinked it.
        assert links == [old["id"]]

        await migrate.upgrade(fresh_url, "0010")
        assert await migrate.current_revision(fresh_url) == "0010"
    finally:
        await engine.dispose()


async def test_downgrading_to_the_first_revision_keeps_every_rating_linked_to_its_verdict(fresh_url: str) -> None:
    # 0002, 0004 and 0010 drop verdict columns in place on SQLite: a batch rebuild of `verdicts` would delete every
    # verdict first, and with foreign keys on that sets each rating's verdict_id to NULL.
    await migrate.upgrade(fresh_url)
    sample = make_sample("医生，孩子高烧四十度，抽了一下，现在叫不醒。")
    verdict = make_verdict(sample, cache_key="d" * 64)
    engine = create_engine(fresh_url)
    try:
        sessions = make_session_factory(engine)
        async with sessions() as session:
            await VerdictRepository(session).add(verdict, sample)
            await session.commit()
        async with engine.begin() as conn:
            await conn.execute(
                insert(RatingRow),
                [{"rubric_hash": verdict.rubric_hash, "sample_hash": sample.hash, "rater": "human:李医生",
                  "axis": "safety", "score": 5.0, "run": 0, "verdict_id": verdict.id, "created_at": T0}],
            )  # fmt: skip
        await _downgrade(engine, fresh_url, "0001")
        async with engine.connect() as conn:
            assert not {"group_hash", "reward", "passed", "cached_tokens"} & await conn.run_sync(_columns)
            query = text("SELECT rater, verdict_id FROM ratings")
            links = {rater: link for rater, link in (await conn.execute(query)).all() if rater == "human:李医生"}
            unlinked = (await conn.execute(text("SELECT count(*) FROM ratings WHERE verdict_id IS NULL"))).scalar()
            ids = (await conn.execute(text("SELECT id FROM verdicts"))).scalars().all()
        assert ids == [verdict.id]
        # (0009's downgrade brings back the judge's own rating rows; every rating stays linked.)
        assert links == {"human:李医生": verdict.id} and unlinked == 0
    finally:
        await engine.dispose()
