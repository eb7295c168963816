"""Score a JSONL file through the Scorer: streamed, resumable, bad lines to an errors file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from judge.errors import RubricJudgeError
from judge.jobs.summary import Summary
from judge.jsonl import invalid_json
from judge.profiles import JudgeProfile
from judge.resume import done_lines
from judge.runtime import Runtime
from judge.samples import Sample, SampleIn, normalise
from judge.service import ScoreOptions, check_limits, score_samples
from rubrics.schema import Rubric


@dataclass
class FileRunStats:
    skipped: int = 0
    scored: int = 0
    invalid: int = 0
    cached: int = 0
    passed: int = 0
    failed: int = 0
    unscored: int = 0
    axis_failures: dict[str, int] = field(default_factory=dict)


def read_samples(path: Path, skip: Container[int]) -> Iterator[tuple[int, SampleIn | None, str | None]]:
    """(line number, sample or None, error or None) for each non-blank line not in ``skip``."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number in skip or not raw.strip():
                continue
            try:
                yield number, SampleIn.model_validate_json(raw), None
            except ValidationError as exc:
                first = exc.errors()[0]
                if first.get("type") == "json_invalid":
                    yield number, None, invalid_json(raw) or str(first.get("msg"))
                    continue
                where = ".".join(str(p) for p in first.get("loc", ())) or "line"
                yield number, None, f"{where}: {first.get('msg')}"


def _write(fh: IO[bytes], obj: dict[str, Any]) -> None:
    fh.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS) + b"\n")


async def score_file(
    runtime: Runtime,
    rubric: Rubric,
    profile: JudgeProfile,
    source: Path,
    out: Path,
    errors: Path,
    *,
    options: ScoreOptions,
    batch_size: int = 256,
    on_progress: Any = None,
) -> FileRunStats:
    """Score every line of ``source`` not yet in ``out``/``errors``; results keep their line numbers."""
    stats = FileRunStats()
    skip = done_lines([out, errors])
    stats.skipped = skip.count
    out.parent.mkdir(parents=True, exist_ok=True)
    errors.parent.mkdir(parents=True, exist_ok=True)
    with out.open("ab") as out_fh, errors.open("ab") as err_fh:
        pending: list[tuple[int, Sample]] = []
        # Two batches in flight keep the judge busy while the previous batch's stragglers finish.
        window: list[asyncio.Task[tuple[list[int], dict[str, Any]]]] = []

        async def run(batch: list[tuple[int, Sample]]) -> tuple[list[int], dict[str, Any]]:
            body = await score_samples(runtime, rubric, profile, [s for _, s in batch], options)
            return [n for n, _ in batch], body

        def flush_done(task: asyncio.Task[tuple[list[int], dict[str, Any]]]) -> None:
            numbers, body = task.result()
            for number, result in zip(numbers, body["results"], strict=True):
                _write(out_fh, {"line": number, **result})
                _count(stats, result)
            out_fh.flush()
            os.fsync(out_fh.fileno())
            if on_progress is not None:
                on_progress(len(numbers))

        for number, sample_in, error in read_samples(source, skip):
            if sample_in is not None:
                try:
                    check_limits(runtime.settings, [sample_in])
                except RubricJudgeError as exc:
                    sample_in, error = None, f"{exc.field}: {exc.message}"
            if sample_in is None:
                _write(err_fh, {"line": number, "error": error})
                err_fh.flush()
                stats.invalid += 1
                if on_progress is not None:
                    on_progress(1)
                continue
            pending.append((number, normalise(sample_in)))
            if len(pending) >= batch_size:
                window.append(asyncio.create_task(run(pending)))
                pending = []
                if len(window) >= 2:
                    first = window.pop(0)
                    await first
                    flush_done(first)
        if pending:
            window.append(asyncio.create_task(run(pending)))
        for task in window:
            await task
            flush_done(task)
    return stats


def summarise_score_files(out: Path, errors: Path) -> Summary:
    """The filter-style summary of a ``score`` run's output (resumed runs included): a passed sample counts as
    kept, a failed one as dropped, one without a decision as failed, a bad line as invalid."""
    summary = Summary()
    for path, is_error in ((out, False), (errors, True)):
        if not path.exists():
            continue
        with path.open("rb") as fh:
            for raw in fh:
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if is_error:
                    summary.add({"outcome": "invalid"})
                    continue
                passed = record.get("passed")
                outcome = "kept" if passed is True else "dropped" if passed is False else "failed"
                summary.add({"outcome": outcome, "verdict": record})
    return summary


def _count(stats: FileRunStats, result: dict[str, Any]) -> None:
    stats.scored += 1
    stats.cached += int(bool(result.get("cached")))
    if result.get("passed") is True:
        stats.passed += 1
    elif result.get("passed") is False:
        stats.failed += 1
    else:
        stats.unscored += 1
    for axis in result.get("failing_axes", []):
        stats.axis_failures[axis] = stats.axis_failures.get(axis, 0) + 1
