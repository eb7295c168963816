"""Verdict rows on PostgreSQL and SQLite: axes bound as pre-serialised JSON store what the old dict path stored."""

from __future__ import annotations

import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.store.models import SampleRow, VerdictRow
from judge.store.verdicts_repository import VerdictRepository, verdict_to_row
from judge.verdict_json import axes_json
from judge.verdicts import AxisResult, AxisStatus, Verdict
from tests.judge.store.factories import make_sample, make_verdict

Sessions = async_sessionmaker[AsyncSession]

_RATIONALE = '患者说“心口疼”，情绪焦虑；回答先安抚再给出就医指征。🙂 "引号" \\ 反斜杠'


def _verdicts() -> list[Verdict]:
    sample = make_sample()
    with_logprobs = make_verdict(sample, rationale=_RATIONALE)
    with_logprobs.axes["safety"] = AxisResult(
        score=4,
        expected=4.123456789,
        mass=0.9987,
        probabilities={1: 0.001, 2: 0.01, 3: 0.1, 4: 0.7, 5: 0.189},
        status=AxisStatus.ok,
        rationale="提示了红旗症状。",
        score_method="logprobs",
        by_position={1: 4, 2: 5},
    )
    return [with_logprobs, make_verdict(sample, complete=False, rationale=_RATIONALE)]


def _old_row(verdict: Verdict) -> dict[str, object]:
    """The row as written before axes were bound pre-serialised: a dict, serialised by the engine."""
    return {**verdict_to_row(verdict), "axes": verdict.model_dump(mode="json", include={"axes"})["axes"]}


async def _stored_axes(session: AsyncSession, verdict_id: str) -> object:
    # The column's text as the database holds it (no SQLAlchemy type in between), parsed.
    query = text("SELECT CAST(axes AS TEXT) FROM verdicts WHERE id = :id")
    raw = (await session.execute(query, {"id": verdict_id})).scalar_one()
    return orjson.loads(raw)


async def test_stored_axes_have_the_content_of_the_old_rows(db_sessions: Sessions) -> None:
    verdicts = _verdicts()
    sample = make_sample()
    async with db_sessions() as session:
        repo = VerdictRepository(session)
        # As the writer stores them (axes serialised by the caller) and as other callers do.
        await repo.add_many([(verdicts[0], sample)], axes=[axes_json(verdicts[0])])
        await repo.add_many([(verdicts[1], sample)])
        await session.commit()

    async with db_sessions() as session:
        repo = VerdictRepository(session)
        for verdict in verdicts:
            assert await _stored_axes(session, verdict.id) == _old_row(verdict)["axes"]
            loaded = await repo.get(verdict.id)
            assert loaded is not None
            assert loaded.model_dump(exclude={"created_at"}) == verdict.model_dump(exclude={"created_at"})
            assert loaded.axes["emotion_perception"].rationale == _RATIONALE


async def test_old_and_new_rows_are_stored_and_read_back_alike(db_sessions: Sessions) -> None:
    old, new = _verdicts()[0], _verdicts()[0]
    sample = make_sample()
    async with db_sessions() as session:
        await VerdictRepository(session).add_many([(new, sample)], axes=[axes_json(new)])
        # A row written by the code before this change, through the same engine (its JSON serialiser).
        await session.execute(insert(VerdictRow.__table__), [_old_row(old)])  # type: ignore[arg-type]
        await session.commit()

    async with db_sessions() as session:
        repo = VerdictRepository(session)
        loaded_old, loaded_new = await repo.get(old.id), await repo.get(new.id)
        columns = [c for c in VerdictRow.__table__.columns if c.key not in ("id", "created_at")]
        rows = {row.id: row for row in (await session.execute(select(VerdictRow.id, *columns))).all()}
        assert await _stored_axes(session, old.id) == await _stored_axes(session, new.id)
        assert (await session.scalar(select(SampleRow.content).where(SampleRow.hash == sample.hash))) == (
            sample.canonical()
        )
    assert loaded_old is not None and loaded_new is not None
    assert loaded_old.model_dump(exclude={"id", "created_at"}) == loaded_new.model_dump(exclude={"id", "created_at"})
    # Every column, axes included, holds the same value for both rows.
    assert rows[old.id][1:] == rows[new.id][1:]
