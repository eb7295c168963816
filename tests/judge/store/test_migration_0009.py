"""Migration 0009 drops judge rating rows only where the verdicts give exactly the same ratings.

A database at revision 0004 is filled the way the old verdict writer and a stability study left it; after the
upgrade, every rating reads back as before (now partly from the verdicts), and the downgrade writes the judges'
rows back. On PostgreSQL (a database of the test's own) and SQLite.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import func, insert, select

from judge.store import migrate
from judge.store.database import create_engine, make_session_factory
from judge.store.models import RatingRow, SampleRow, VerdictRow
from judge.store.ratings_repository import RatingRepository

RUBRIC = "r" * 64
AXES = ("safety", "medical_accuracy", "communication")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _sample(i: int) -> str:
    return f"{i:064x}"


def _verdict(
    sample: int, judge: str, minute: int, scores: dict[str, int | None], complete: bool = True
) -> dict[str, Any]:
    axes = {
        k: ({"score": v, "status": "ok", "rationale": "建议就医"} if v is not None else {"status": "parse_error"})
        for k, v in scores.items()
    }
    return {
        "id": uuid.uuid4().hex, "cache_key": uuid.uuid4().hex * 2, "sample_hash": _sample(sample),
        "rubric_ref": "tiny@1", "rubric_hash": RUBRIC, "judge": judge, "profile_hash": "p" * 64,
        "complete": complete, "axes": axes, "calls": 1, "prompt_tokens": 1, "completion_tokens": 1, "retries": 0,
        "error": None, "latency_ms": 1.0, "clipped": False, "created_at": T0 + timedelta(minutes=minute),
    }  # fmt: skip


def _rows(v: dict[str, Any], minute: int, run: int = 0, **changed: float) -> list[dict[str, Any]]:
    """The rows the old writer (or a study, with ``run``) made of a verdict, ``changed`` scores aside."""
    return [
        {
            "rubric_hash": RUBRIC,
            "sample_hash": v["sample_hash"],
            "rater": f"judge:{v['judge']}",
            "axis": axis,
            "score": float(changed.get(axis, a["score"])),
            "run": run,
            "verdict_id": v["id"],
            "created_at": T0 + timedelta(minutes=minute),
        }  # fmt: skip
        for axis, a in v["axes"].items()
        if a.get("status") == "ok"
    ]


async def test_only_exactly_derivable_judge_rows_go_and_every_rating_reads_back(fresh_url: str) -> None:
    await migrate.upgrade(fresh_url, "0004")
    all_ok = dict.fromkeys(AXES, 4)
    # Sample 0: an old verdict and the newest; the writer's rows are the newest's -> derivable, dropped.
    old0, new0 = _verdict(0, "甲", 0, all_ok), _verdict(0, "甲", 5, {**all_ok, "safety": 2})
    # Sample 1: a stability study: run 0 is the first run's verdict, not the newest -> kept; run 1 kept.
    run0, run1 = _verdict(1, "甲", 1, all_ok), _verdict(1, "甲", 2, {**all_ok, "safety": 5})
    # Sample 2: rows that differ from the newest verdict on one axis (edited by hand) -> kept, as a group.
    v2 = _verdict(2, "甲", 3, all_ok)
    # Sample 3: rows missing one of the verdict's ok axes -> kept.
    v3 = _verdict(3, "乙", 3, {**all_ok, "communication": 3})
    # Sample 4: a failed verdict after the complete one: the complete one stays the rating -> dropped.
    v4, failed4 = _verdict(4, "乙", 3, all_ok), _verdict(4, "乙", 9, {**all_ok, "safety": None}, complete=False)
    verdicts = [old0, new0, run0, run1, v2, v3, v4, failed4]
    rows = [
        *_rows(new0, 6),
        *_rows(run0, 10), *_rows(run1, 10, run=1),
        *_rows(v2, 4, communication=1),
        *_rows(v3, 4)[:2],
        *_rows(v4, 4),
        {"rubric_hash": RUBRIC, "sample_hash": _sample(2), "rater": "human:张医生", "axis": "safety", "score": 3.0,
         "run": 0, "verdict_id": None, "created_at": T0},
    ]  # fmt: skip
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(SampleRow),
                [{"hash": _sample(i), "content": {"response": f"回答{i}"}, "created_at": T0} for i in range(5)],
            )
            await conn.execute(insert(VerdictRow), verdicts)
            await conn.execute(insert(RatingRow), rows)
        before = {(r["sample_hash"], r["rater"], r["axis"], r["run"]): (r["score"], r["verdict_id"]) for r in rows}
        await engine.dispose()

        await migrate.upgrade(fresh_url, "0009")
        async with engine.connect() as conn:
            kept = {(r.sample_hash, r.rater, r.run) for r in await conn.execute(select(RatingRow))}
        # Samples 0 and 4: derivable, gone. The study's runs, the edited and the partial groups, the human: kept.
        assert kept == {
            (_sample(1), "judge:甲", 0), (_sample(1), "judge:甲", 1), (_sample(2), "judge:甲", 0),
            (_sample(3), "judge:乙", 0), (_sample(2), "human:张医生", 0),
        }  # fmt: skip
        async with make_session_factory(engine)() as session:
            after = await RatingRepository(session).query(RUBRIC)
        assert {(r.sample_hash, r.rater, r.axis, r.run): (r.score, r.verdict_id) for r in after} == before

        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(migrate.make_config(fresh_url, sync), "0004"))
        async with engine.connect() as conn:
            restored = int(await conn.scalar(select(func.count()).select_from(RatingRow)) or 0)
        assert restored == len(rows)
    finally:
        await engine.dispose()
