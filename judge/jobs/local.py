"""A job run on this machine, straight through the Scorer: streamed, resumable, kept and dropped to two files.

Resuming needs no state of its own: the output files are the record (see :mod:`judge.resume`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from judge.jobs.ingest import file_blocks, max_line_bytes, split_lines
from judge.jobs.process import ItemOutcome, JobPlan, check_line, invalid_outcome, process_items
from judge.jobs.schemas import ItemState
from judge.jobs.summary import Summary
from judge.resume import done_lines, iter_records
from judge.runtime import Runtime


def summarise_files(paths: Iterable[Path]) -> Summary:
    """The summary of everything the output files hold (this run and the runs it resumed)."""
    summary = Summary()
    for path in paths:
        for raw in iter_records(path):
            try:
                summary.add(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
    return summary


@dataclass
class LocalRun:
    resumed: int = 0
    processed: int = 0


class _Outputs:
    def __init__(self, kept: IO[bytes], dropped: IO[bytes]) -> None:
        self.kept = kept
        self.dropped = dropped

    def write(self, outcomes: Iterable[ItemOutcome]) -> int:
        n = 0
        for outcome in outcomes:
            target = self.kept if outcome.state is ItemState.kept else self.dropped
            target.write(outcome.encoded() + b"\n")
            n += 1
        # Durable before the next batch: a crash loses at most the batches in flight.
        for fh in (self.kept, self.dropped):
            fh.flush()
            os.fsync(fh.fileno())
        return n


async def _lines(source: Path, runtime: Runtime) -> AsyncIterator[tuple[int, bytes | None]]:
    async for item in split_lines(file_blocks(source), max_line_bytes(runtime.settings.max_text_chars)):
        yield item


async def run_local(
    runtime: Runtime,
    plan: JobPlan,
    source: Path,
    kept: Path,
    dropped: Path,
    *,
    batch_size: int = 256,
    window: int = 4,
    on_progress: Callable[[int], Any] | None = None,
) -> LocalRun:
    """Process every line of ``source`` not yet in ``kept``/``dropped``; up to ``window`` batches at once."""
    done = done_lines([kept, dropped])
    run = LocalRun(resumed=done.count)
    for path in (kept, dropped):
        path.parent.mkdir(parents=True, exist_ok=True)
    with kept.open("ab") as kept_fh, dropped.open("ab") as dropped_fh:
        outputs = _Outputs(kept_fh, dropped_fh)
        in_flight: list[asyncio.Task[list[ItemOutcome]]] = []
        batch: list[tuple[int, str]] = []

        def written(n: int) -> None:
            run.processed += n
            if on_progress is not None:
                on_progress(n)

        async def drain(keep: int) -> None:
            # Oldest first, so that the files grow roughly in line order.
            while len(in_flight) > keep:
                written(outputs.write(await in_flight.pop(0)))

        try:
            async for number, raw in _lines(source, runtime):
                if number in done:
                    continue
                if raw is None:
                    limit = max_line_bytes(runtime.settings.max_text_chars)
                    written(outputs.write([invalid_outcome(number, None, f"line: longer than {limit} bytes")]))
                    continue
                text, error = check_line(plan.kind, raw, runtime.settings)
                if text is None:
                    written(outputs.write([invalid_outcome(number, raw, error or "line: invalid")]))
                    continue
                batch.append((number, text))
                if len(batch) >= batch_size:
                    in_flight.append(asyncio.create_task(process_items(runtime, plan, batch)))
                    batch = []
                    await drain(window - 1)
            if batch:
                in_flight.append(asyncio.create_task(process_items(runtime, plan, batch)))
            await drain(0)
        finally:
            for task in in_flight:
                task.cancel()
    return run
