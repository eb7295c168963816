"""Verdicts out of the database, as JSONL or Parquet, streamed: memory stays constant whatever the row count.

One server-side cursor reads ``batch`` rows at a time; each batch is written (a JSONL chunk, or one Parquet row
group) before the next is fetched. Rows come in storage order (about the order they were written), not sorted:
a sort would make the database hold the whole selection. pyarrow is imported only for Parquet (extra
``export``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.retention.errors import InvalidRetentionOption
from judge.store.models import SampleRow, VerdictRow

ExportFormat = Literal["jsonl", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "parquet")

V = VerdictRow
# Every column of a verdict, in this order, in both formats; ``axes`` stays JSON (its keys are the rubric's).
# ``cached_tokens`` and ``hedges`` are null for verdicts stored before they were recorded (migration 0010): the
# export says "not recorded" rather than 0.
COLUMNS = (
    V.id, V.created_at, V.rubric_ref, V.rubric_hash, V.judge, V.profile_hash, V.cache_key, V.sample_hash,
    V.complete, V.passed, V.reward, V.error, V.axes, V.calls, V.prompt_tokens, V.cached_tokens,
    V.completion_tokens, V.retries, V.hedges, V.latency_ms, V.clipped, V.group_hash, V.group_position, V.group_size,
)  # fmt: skip


@dataclass(frozen=True)
class ExportFilter:
    since: datetime | None = None
    until: datetime | None = None
    rubric_hash: str | None = None
    judge: str | None = None
    with_samples: bool = False


@dataclass(frozen=True)
class ExportResult:
    rows: int
    path: Path | None


def _query(where: ExportFilter) -> Select[Any]:
    columns: list[Any] = list(COLUMNS)
    stmt = select(*columns)
    if where.with_samples:
        stmt = select(*columns, SampleRow.content.label("sample")).join(SampleRow, SampleRow.hash == V.sample_hash)
    if where.since is not None:
        stmt = stmt.where(V.created_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(V.created_at < where.until)
    if where.rubric_hash is not None:
        stmt = stmt.where(V.rubric_hash == where.rubric_hash)
    if where.judge is not None:
        stmt = stmt.where(V.judge == where.judge)
    return stmt


async def stream_verdicts(
    sessions: async_sessionmaker[AsyncSession], where: ExportFilter, *, batch: int = 5_000
) -> AsyncIterator[list[dict[str, Any]]]:
    """The selected verdicts as dicts (column name -> value), ``batch`` at a time, through one cursor."""
    async with sessions() as session:
        connection = await session.connection()
        result = await connection.stream(_query(where).execution_options(yield_per=batch))
        async for rows in result.mappings().partitions():
            yield [dict(row) for row in rows]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def jsonl_line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, default=_json_default) + b"\n"


def _arrow_schema(with_samples: bool) -> Any:
    import pyarrow as pa

    fields = [
        ("id", pa.string()), ("created_at", pa.timestamp("us", tz="UTC")), ("rubric_ref", pa.string()),
        ("rubric_hash", pa.string()), ("judge", pa.string()), ("profile_hash", pa.string()),
        ("cache_key", pa.string()), ("sample_hash", pa.string()), ("complete", pa.bool_()), ("passed", pa.bool_()),
        ("reward", pa.float64()), ("error", pa.string()), ("axes", pa.string()),
        ("scores", pa.map_(pa.string(), pa.int8())),
        ("calls", pa.int32()), ("prompt_tokens", pa.int32()), ("cached_tokens", pa.int32()),
        ("completion_tokens", pa.int32()), ("retries", pa.int32()), ("hedges", pa.int32()),
        ("latency_ms", pa.float64()), ("clipped", pa.bool_()), ("group_hash", pa.string()),
        ("group_position", pa.int32()), ("group_size", pa.int32()),
    ]  # fmt: skip
    if with_samples:
        fields.append(("sample", pa.string()))
    return pa.schema(fields)


def _scores(axes: dict[str, Any]) -> list[tuple[str, int]]:
    """The ok axes' integer scores, for queries that should not parse ``axes``."""
    return [
        (key, int(axis["score"]))
        for key, axis in axes.items()
        if isinstance(axis, dict) and axis.get("status") == "ok" and axis.get("score") is not None
    ]


def _arrow_batch(rows: list[dict[str, Any]], schema: Any) -> Any:
    import pyarrow as pa

    data: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in rows:
        for name in schema.names:
            if name == "axes":
                data[name].append(orjson.dumps(row["axes"]).decode())
            elif name == "scores":
                data[name].append(_scores(row["axes"]))
            elif name == "sample":
                data[name].append(orjson.dumps(row["sample"]).decode())
            else:
                data[name].append(row[name])
    return pa.RecordBatch.from_pydict(data, schema=schema)


def require_parquet() -> None:
    """Fail with a clear message (naming the extra) when pyarrow is not installed."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise InvalidRetentionOption(
            "Parquet needs pyarrow: pip install 'rubric-judge[export]' (or use --format jsonl)", field="format"
        ) from exc


async def export_verdicts(
    sessions: async_sessionmaker[AsyncSession],
    where: ExportFilter,
    *,
    format: ExportFormat,
    out: Path | None,
    stdout: IO[bytes] | None = None,
    batch: int = 5_000,
    on_batch: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write the selected verdicts to ``out`` (JSONL may go to ``stdout`` when ``out`` is None)."""
    if format not in FORMATS:
        raise InvalidRetentionOption(f"unknown format {format!r}: use jsonl or parquet", field="format")
    rows = 0
    if format == "parquet":
        if out is None:
            raise InvalidRetentionOption("Parquet is written to a file: give --out", field="out")
        require_parquet()
        import pyarrow.parquet as pq

        schema = _arrow_schema(where.with_samples)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed at the end: a half-written file never has the final name.
        partial = out.with_name(out.name + ".partial")
        with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
            async for chunk in stream_verdicts(sessions, where, batch=batch):
                writer.write_batch(_arrow_batch(chunk, schema))
                rows += len(chunk)
                if on_batch is not None:
                    on_batch(rows)
        partial.replace(out)
        return ExportResult(rows, out)

    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with partial.open("wb") as fh:
            rows = await _write_jsonl(sessions, where, fh, batch, on_batch)
        partial.replace(out)
        return ExportResult(rows, out)
    if stdout is None:
        raise InvalidRetentionOption("give --out, or write JSONL to standard output", field="out")
    rows = await _write_jsonl(sessions, where, stdout, batch, on_batch)
    return ExportResult(rows, None)


async def _write_jsonl(
    sessions: async_sessionmaker[AsyncSession],
    where: ExportFilter,
    fh: IO[bytes],
    batch: int,
    on_batch: Callable[[int], None] | None,
) -> int:
    rows = 0
    async for chunk in stream_verdicts(sessions, where, batch=batch):
        fh.write(b"".join(jsonl_line(row) for row in chunk))
        rows += len(chunk)
        if on_batch is not None:
            on_batch(rows)
    fh.flush()
    return rows
