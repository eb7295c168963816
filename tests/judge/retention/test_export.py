"""Export: verdicts out as JSONL or Parquet, batch by batch, with a time filter. PostgreSQL and SQLite in turn."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.retention.export import ExportFilter, export_verdicts, stream_verdicts
from judge.samples import Sample
from judge.store.models import VerdictRow
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import Usage, Verdict
from tests.judge.store.factories import make_sample, make_verdict

Sessions = async_sessionmaker[AsyncSession]
SPLIT = datetime(2026, 11, 15, tzinfo=UTC)


async def _fill(sessions: Sessions, n_old: int, n_new: int) -> tuple[list[Verdict], list[Verdict]]:
    old, new = [], []
    items: list[tuple[Verdict, Sample]] = []
    for i in range(n_old + n_new):
        sample = make_sample(f"医生，我第{i}次问：胃里反酸，晚上睡不着。")
        when = SPLIT.timestamp() + (-86_400 * (i + 1) if i < n_old else 3_600 * i)
        verdict = make_verdict(sample, created_at=when, rationale=f"语气温和，第{i}条理由。", complete=i % 4 != 3)
        (old if i < n_old else new).append(verdict)
        items.append((verdict, sample))
    async with sessions() as session:
        await VerdictRepository(session).add_many(items)
        await session.commit()
    return old, new


async def test_jsonl_since_a_date_round_trips_the_verdicts(db_sessions: Sessions, tmp_path: Path) -> None:
    _, new = await _fill(db_sessions, 3, 5)
    out = tmp_path / "导出" / "verdicts.jsonl"
    result = await export_verdicts(db_sessions, ExportFilter(since=SPLIT), format="jsonl", out=out, batch=2)
    assert result.rows == 5
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    by_id = {line["id"]: line for line in lines}
    assert set(by_id) == {v.id for v in new}
    for verdict in new:
        line = by_id[verdict.id]
        assert line["axes"]["emotion_perception"]["rationale"] == verdict.axes["emotion_perception"].rationale
        assert line["complete"] == verdict.complete and line["sample_hash"] == verdict.sample_hash
        assert datetime.fromisoformat(line["created_at"]).timestamp() == verdict.created_at
    assert not out.with_name("verdicts.jsonl.partial").exists()


async def test_jsonl_to_a_stream_with_samples(db_sessions: Sessions) -> None:
    await _fill(db_sessions, 0, 2)
    buffer = io.BytesIO()
    result = await export_verdicts(
        db_sessions, ExportFilter(with_samples=True), format="jsonl", out=None, stdout=buffer
    )
    lines = [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    assert result.rows == len(lines) == 2
    assert all("胃里反酸" in line["sample"]["messages"][0]["content"] for line in lines)


async def test_parquet_is_written_one_row_group_per_batch(db_sessions: Sessions, tmp_path: Path) -> None:
    old, new = await _fill(db_sessions, 2, 7)
    out = tmp_path / "verdicts.parquet"
    result = await export_verdicts(db_sessions, ExportFilter(), format="parquet", out=out, batch=3)
    assert result.rows == 9
    parquet = pq.ParquetFile(out)
    # One row group per fetched batch: the file is written as the cursor goes, never held whole.
    assert parquet.metadata.num_row_groups == math.ceil(9 / 3)
    table = parquet.read()
    rows = {row["id"]: row for row in table.to_pylist()}
    assert set(rows) == {v.id for v in old + new}
    for verdict in old + new:
        row = rows[verdict.id]
        ok = {k: a.score for k, a in verdict.axes.items() if a.score is not None}
        assert dict(row["scores"]) == ok
        assert orjson.loads(row["axes"])["emotion_perception"]["rationale"].startswith("语气温和")
        assert row["created_at"].timestamp() == verdict.created_at
        assert row["complete"] == verdict.complete


async def test_rows_are_fetched_batch_by_batch(db_sessions: Sessions) -> None:
    await _fill(db_sessions, 0, 7)
    sizes = [len(batch) async for batch in stream_verdicts(db_sessions, ExportFilter(), batch=3)]
    assert sum(sizes) == 7 and max(sizes) <= 3 and len(sizes) >= 3


async def test_both_formats_carry_the_whole_usage_and_null_where_not_recorded(
    db_sessions: Sessions, tmp_path: Path
) -> None:
    measured, unrecorded = make_sample("医生，宝宝发烧39度，能用退热贴吗？"), make_sample("医生，孩子咳嗽一周了。")
    usage = Usage(calls=2, prompt_tokens=10_440, cached_tokens=8_350, completion_tokens=1_300, retries=1, hedges=1)
    new = make_verdict(measured, usage=usage, rationale="建议按体重给药，并观察精神状态。")
    old = make_verdict(unrecorded, rationale="语气温和。")
    async with db_sessions() as session:
        await VerdictRepository(session).add_many([(new, measured), (old, unrecorded)])
        # As a verdict stored before migration 0010 reads: its cached tokens and hedges were never recorded.
        await session.execute(update(VerdictRow).where(VerdictRow.id == old.id).values(cached_tokens=None, hedges=None))
        await session.commit()
    expected: dict[str, dict[str, int | None]] = {
        new.id: {"cached_tokens": 8_350, "hedges": 1, "prompt_tokens": 10_440, "retries": 1},
        old.id: {"cached_tokens": None, "hedges": None, "prompt_tokens": 1234, "retries": 1},
    }

    jsonl, parquet = tmp_path / "v.jsonl", tmp_path / "v.parquet"
    await export_verdicts(db_sessions, ExportFilter(), format="jsonl", out=jsonl)
    await export_verdicts(db_sessions, ExportFilter(), format="parquet", out=parquet)
    from_jsonl: list[dict[str, Any]] = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    from_parquet: list[dict[str, Any]] = pq.ParquetFile(parquet).read().to_pylist()
    for rows in (from_jsonl, from_parquet):
        assert {row["id"]: {k: row[k] for k in expected[new.id]} for row in rows} == expected
