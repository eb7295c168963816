"""Durability: ``kill -9`` a real ``rubric-judge worker`` in the middle of a job; the job still ends with every input
line exactly once in the output (kept, dropped, failed or invalid)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from judge.jobs.schemas import JobOptions, JobSpec
from judge.jobs.service import JobsService
from judge.runtime import Runtime
from judge.settings import Settings
from tests.judge.jobs.conftest import collect_results, sample_line, write_job_judges
from tests.support.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[3]
LINES = 1500


@pytest.fixture
def slow_server() -> Iterator[OpenAIServer]:
    # Slow enough (with few concurrent calls per worker) that the job is still running when the kill lands.
    with OpenAIServer(latency_ms=40) as server:
        yield server


def start_worker(settings: Settings, name: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RJ_")}
    env.update(
        RJ_DATABASE_URL=settings.database_url,
        RJ_REDIS_URL=str(settings.redis_url),
        RJ_REDIS_PREFIX=settings.redis_prefix,
        RJ_JUDGES_FILE=str(settings.judges_file),
        RJ_JOB_LEASE_S="2",
        RJ_LOG_LEVEL="WARNING",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "judge", "worker", "--name", name, "--max-chunks", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def lines_of(rows: list[bytes]) -> AsyncIterator[bytes]:
    yield b"".join(row + b"\n" for row in rows)


async def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    job_settings: Settings, slow_server: OpenAIServer, tmp_path: Path
) -> None:
    judges = write_job_judges(tmp_path / "slow-judges.yaml", slow_server, concurrency=4)
    settings = job_settings.model_copy(update={"judges_file": judges})
    rows = [orjson.dumps(sample_line(i % 1200)) for i in range(LINES)]  # lines 1201.. repeat earlier samples
    for bad in (10, 777, 1499):
        rows[bad] = "不是 JSON 的一行".encode()
    victim = start_worker(settings, "victim")
    survivor = start_worker(settings, "survivor")
    replacement: subprocess.Popen[bytes] | None = None
    try:
        async with await Runtime.open(settings) as runtime:
            service = JobsService(runtime)
            try:
                spec = JobSpec(kind="filter", judge="loop", options=JobOptions(chunk_size=50))
                job_id = str((await service.create_from_stream(spec, lines_of(rows)))["id"])

                async def victim_holds_work() -> bool:
                    async with runtime.engine.connect() as conn:
                        held = await conn.scalar(
                            text("SELECT count(*) FROM job_chunks WHERE owner = 'victim' AND state = 'running'")
                        )
                    done = (await service.get(job_id))["counts"]["done"]
                    return bool(held) and done >= 200

                async with asyncio.timeout(120):
                    while not await victim_holds_work():
                        assert victim.poll() is None, victim.stderr.read().decode() if victim.stderr else ""
                        await asyncio.sleep(0.05)
                os.kill(victim.pid, signal.SIGKILL)
                assert victim.wait(timeout=10) == -signal.SIGKILL
                assert (await service.get(job_id))["state"] == "running"
                replacement = start_worker(settings, "replacement")

                async with asyncio.timeout(240):
                    while (job := await service.get(job_id))["state"] != "done":
                        await asyncio.sleep(0.2)

                records = await collect_results(service, job_id)
                kept_side = await collect_results(service, job_id, kept=True)
            finally:
                await service.aclose()
            async with runtime.engine.connect() as conn:
                retried = await conn.scalar(text("SELECT count(*) FROM job_chunks WHERE attempts > 1"))
                left = await conn.scalar(text("SELECT count(*) FROM job_items WHERE state = 'pending'"))
    finally:
        for proc in (survivor, replacement, victim):
            if proc is not None:
                stop(proc)

    lines = Counter(int(r["line"]) for r in records)
    assert sorted(lines) == list(range(1, LINES + 1))  # nothing lost
    assert max(lines.values()) == 1  # nothing twice
    assert left == 0
    assert retried and retried >= 1  # the victim's chunks were taken over
    counts = job["counts"]
    assert counts["done"] == counts["total"] == LINES
    assert counts["invalid"] == 3
    assert counts["kept"] + counts["dropped"] + counts["failed"] == LINES - 3
    assert counts["kept"] == len(kept_side)
    # A repeated sample got the same outcome as its first occurrence (the store served it, or dedup did).
    by_line = {int(r["line"]): r for r in records}
    for line in range(1201, LINES + 1):
        first, again = by_line[line - 1200], by_line[line]
        if first["outcome"] != "invalid" and again["outcome"] != "invalid":
            assert first["verdict"]["sample_hash"] == again["verdict"]["sample_hash"]
            assert first["outcome"] == again["outcome"]
