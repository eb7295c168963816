"""Shared pieces of the benchmarks: subprocess servers on loopback, a scratch database, tables."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("RJ_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("RJ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
console = Console()

# Patient openings for generated benchmark samples: dialect, a worried parent, vague symptoms, and English.
PATIENTS = [
    "俺娘这两天心口窝疼得厉害，还老是喘不上气，咋整啊",
    "我家娃发烧三天了，39度退不下来，吃了美林也不管用，急死了",
    "医生我最近老是头晕眼花的，一站起来就发黑，是不是贫血啊",
    "I've had a pounding headache for three days and now my neck is stiff, should I worry?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout_s} s")


@contextlib.contextmanager
def process(
    args: list[str], *, env: dict[str, str] | None = None, ready_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (Python module or command), stopped at the end; waits for ``ready_url``."""
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    try:
        if ready_url:
            wait_http(ready_url)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    """Terminate a child process, killing it if it has not exited within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()


def stub_judge(
    port: int, latency_ms: float, workers: int = 1
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "tests.support.openai_server", "--port", str(port), "--latency-ms", str(latency_ms)]
    if workers > 1:
        args += ["--workers", str(workers)]
    return process(args, ready_url=f"http://127.0.0.1:{port}/v1/models")


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    from judge.store.migrate import upgrade_sync

    name = f"rj_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    try:
        upgrade_sync(url)
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def post_all(client: httpx.AsyncClient, path: str, bodies: list[bytes]) -> tuple[float, list[Any]]:
    """POST every JSON body at once; (wall seconds for all of them, the decoded answers), raising on an error status."""
    started = time.perf_counter()
    responses = await asyncio.gather(
        *(client.post(path, content=b, headers={"content-type": "application/json"}) for b in bodies)
    )
    wall = time.perf_counter() - started
    for r in responses:
        r.raise_for_status()
    return wall, [orjson.loads(r.content) for r in responses]


async def timed_post(api: str, path: str, body: bytes, timeout_s: float) -> tuple[float, httpx.Response]:
    """POST one JSON body on a fresh client; (wall seconds, the response), raising on an error status."""
    async with httpx.AsyncClient(base_url=api, timeout=timeout_s) as client:
        started = time.perf_counter()
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
        wall = time.perf_counter() - started
    response.raise_for_status()
    return wall, response


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def print_table(title: str, rows: list[tuple[str, Any, Any, Any]]) -> None:
    """Rows of (measure, value, goal, verdict)."""
    table = Table(title=title)
    for column in ("measure", "value", "goal", "met"):
        table.add_column(column)
    for measure, value, goal, met in rows:
        table.add_row(measure, str(value), str(goal), "" if met is None else ("yes" if met else "NO"))
    console.print(table)


def prompt_call_count(rubric_ref: str, mode: str = "joint") -> tuple[str, int]:
    """(the resolved ref, the judge calls) of one sample under a built-in rubric in ``mode``; in group mode, the
    calls of one display order (``render_group_prompts`` renders one prompt per entry of ``prompt_calls``).

    Derived from the rubric, not assumed: a rubric with response-only layers (prmed@2) splits a joint or group
    call in two, so a benchmark that expected one call per sample would misjudge its own ideal.
    """
    from judge.backends.openai.prompts import prompt_calls
    from rubrics.registry import RubricRegistry

    rubric = RubricRegistry().resolve(rubric_ref)
    return rubric.ref, len(prompt_calls(rubric, mode))


def judge_call_count(metrics_text: str, judge: str | None = None) -> float:
    """Judge calls the API has made (every outcome), from its Prometheus ``rj_judge_call_seconds`` counts."""
    total = 0.0
    for labels, value in re.findall(r"^rj_judge_call_seconds_count\{([^}]*)\} (\S+)$", metrics_text, re.M):
        if judge is None or f'judge="{judge}"' in labels:
            total += float(value)
    return total


def scratch_prefix(tag: str) -> str:
    """A fresh Redis key prefix whose keys are deleted when the benchmark exits (they have week-long TTLs)."""
    prefix = f"rjbench:{tag}:{int(time.time())}:"

    def drop() -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{prefix}*", count=5000):
                batch.append(key)
                if len(batch) >= 5000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
        finally:
            client.close()

    atexit.register(drop)
    return prefix
