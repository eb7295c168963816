"""ORM models of bulk jobs: the job, its chunks (the unit a worker leases) and its items (one per input line)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from judge.db.base import HASH_LEN, VERDICT_ID_LEN, Base, JSONType, UTCDateTime, utcnow

JOB_ID_LEN = 32


def _counter() -> Mapped[int]:
    return mapped_column(Integer, default=0, server_default=text("0"))


class JobRow(Base):
    """One bulk job. Counters change in the same transaction as the items they count."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(JOB_ID_LEN), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # ingesting -> running -> done; or cancelled / failed.
    state: Mapped[str] = mapped_column(String(16))
    rubric_ref: Mapped[str] = mapped_column(String(120))
    rubric_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    judge: Mapped[str] = mapped_column(String(100))
    profile_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    generator: Mapped[str | None] = mapped_column(String(100))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # "upload", or the server-side path the input was read from.
    source: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = _counter()
    kept: Mapped[int] = _counter()
    dropped: Mapped[int] = _counter()
    failed: Mapped[int] = _counter()
    invalid: Mapped[int] = _counter()
    chunks: Mapped[int] = _counter()
    # Pass rates, per-axis histograms, failing axes, per-round counts (judge.jobs.summary.Summary).
    stats: Mapped[dict[str, Any]] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, server_default=text("CURRENT_TIMESTAMP"), index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped by the ingest as it goes: an ingest that stopped beating died with its API process.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobChunkRow(Base):
    """A run of consecutive lines: what one queue task scores, under a lease that a heartbeat keeps alive."""

    __tablename__ = "job_chunks"
    # The reaper's question: which running chunks have an expired lease; and which chunks are pending.
    __table_args__ = (Index("ix_job_chunks_state_lease_expires", "state", "lease_expires"),)

    job_id: Mapped[str] = mapped_column(String(JOB_ID_LEN), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_line: Mapped[int] = mapped_column(Integer)
    last_line: Mapped[int] = mapped_column(Integer)
    # pending -> running -> done (running -> pending again when a lease expires or a worker lets go).
    state: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(200))
    # The queue task that holds the chunk, so that a dead worker's task can be taken off the queue.
    task_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = _counter()
    error: Mapped[str | None] = mapped_column(Text)


class JobItemRow(Base):
    """One input line: its raw text while pending, then its outcome and output record."""

    __tablename__ = "job_items"

    job_id: Mapped[str] = mapped_column(String(JOB_ID_LEN), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    # pending | kept | dropped | failed | invalid
    state: Mapped[str] = mapped_column(String(16))
    # The input line; cleared once the item is done (the record carries what is needed).
    input: Mapped[str | None] = mapped_column(Text)
    # The output JSONL line (without its newline), exactly as the results endpoint streams it.
    record: Mapped[str | None] = mapped_column(Text)
    sample_hash: Mapped[str | None] = mapped_column(String(HASH_LEN))
    verdict_id: Mapped[str | None] = mapped_column(String(VERDICT_ID_LEN))
    error: Mapped[str | None] = mapped_column(Text)
