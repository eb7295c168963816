"""Streamed input: JSONL split into lines as bytes arrive, checked, and stored a chunk at a time.

Memory stays flat whatever the input's size: a line longer than the cap is skipped as it streams by (and
reported invalid), and at most one flush of lines is held before it is written and queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path

from judge.jobs.process import check_line, invalid_outcome
from judge.jobs.repository import JobRepository, NewItem
from judge.jobs.schemas import JobKind
from judge.runtime import Runtime

log = logging.getLogger(__name__)

# Lines stored per transaction: several chunks of the default size, so a big upload is not one commit a chunk.
FLUSH_LINES = 2048
# A slow upload still shows it is alive this often (workers fail ingests whose heartbeat stops; see worker.py).
BEAT_S = 30.0
READ_BLOCK = 1 << 20


def max_line_bytes(max_text_chars: int) -> int:
    """The longest line accepted: room for a few texts at the per-text limit, in 4-byte characters."""
    return max(1 << 20, 16 * max_text_chars)


async def split_lines(blocks: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[tuple[int, bytes | None]]:
    """(line number, line) for each non-blank line, numbered from 1; the line is None when it was too long."""
    number = 0
    buffer = bytearray()
    too_long = False
    async for block in blocks:
        start = 0
        while True:
            end = block.find(b"\n", start)
            if end == -1:
                if not too_long:
                    buffer += block[start:]
                    if len(buffer) > max_bytes:
                        too_long = True
                        buffer.clear()
                break
            number += 1
            if too_long:
                yield number, None
            else:
                buffer += block[start:end]
                if len(buffer) > max_bytes:
                    yield number, None
                elif buffer.strip():
                    yield number, bytes(buffer).rstrip(b"\r")
            buffer.clear()
            too_long = False
            start = end + 1
    if too_long or buffer.strip():
        number += 1
        yield number, None if too_long else bytes(buffer).rstrip(b"\r")


async def file_blocks(path: Path, size: int = READ_BLOCK) -> AsyncIterator[bytes]:
    """A file's bytes, read off the event loop."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while block := await asyncio.to_thread(handle.read, size):
            yield block
    finally:
        await asyncio.to_thread(handle.close)


Enqueue = Callable[[str, int], Awaitable[None]]


async def ingest(
    runtime: Runtime,
    job_id: str,
    kind: JobKind,
    lines: AsyncIterable[tuple[int, bytes | None]],
    *,
    chunk_size: int,
    enqueue: Enqueue,
) -> str | None:
    """Store every line of a job as an item (pending, or invalid with its reason) and queue its chunks.

    Returns the job's state afterwards. If the job stops being ingestible (cancelled), reading stops.
    """
    max_bytes = max_line_bytes(runtime.settings.max_text_chars)
    chunk_no = 0
    current: list[NewItem] = []
    ready: list[tuple[int, list[NewItem]]] = []
    held = 0
    last_beat = time.monotonic()

    async def flush() -> bool:
        nonlocal ready, held, last_beat
        last_beat = time.monotonic()
        async with runtime.sessions() as session:
            repo = JobRepository(session)
            if not ready:
                alive = await repo.touch(job_id)
                await session.commit()
                return alive
            for number, items in ready:
                if not await repo.add_chunk(job_id, number, items):
                    await session.rollback()
                    return False
            await session.commit()
        # Queued only once committed: a worker must find the items its task names.
        for number, items in ready:
            if any(item.outcome is None for item in items):
                await enqueue(job_id, number)
        ready, held = [], 0
        return True

    async for number, raw in lines:
        if raw is None:
            item = NewItem(number, None, invalid_outcome(number, None, f"line: longer than {max_bytes} bytes"))
        else:
            text, error = check_line(kind, raw, runtime.settings)
            item = (
                NewItem(number, text) if error is None else NewItem(number, None, invalid_outcome(number, raw, error))
            )
        current.append(item)
        if len(current) >= chunk_size:
            ready.append((chunk_no, current))
            held += len(current)
            chunk_no, current = chunk_no + 1, []
            if held >= FLUSH_LINES and not await flush():
                return None
        if time.monotonic() - last_beat > BEAT_S and not await flush():
            return None
    if current:
        ready.append((chunk_no, current))
    if not await flush():
        return None
    async with runtime.sessions() as session:
        state = await JobRepository(session).finish_ingest(job_id)
        await session.commit()
    return state
