"""Cost section 3: process CPU per judged and per cached sample, of the API and the worker (psutil user + system
time, not wall time), and the floor under it: the OpenAI SDK and judge in this process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from bench.common import post_all, stop
from bench.cost_samples import make_samples, sample_body
from judge.backends.openai.judge import OpenAIJudge
from judge.backends.openai.prompts import render_prompt
from judge.profiles import JudgeProfile
from rubrics.schema import Rubric


def cpu_seconds(pid: int, part: slice = slice(0, 2)) -> float:
    """User + system CPU time of a process and its children (process CPU time, not wall time); ``part``
    ``slice(1, 2)``: system time alone (the kernel's socket and TCP work on loopback is most of it)."""
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[part])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[part])
        except psutil.NoSuchProcess:
            continue
    return total


async def api_cpu(
    api: str,
    pid: int,
    n: int,
    batch: int,
    latency_s: float,
    concurrency: int,
    rounds: int,
    run: str = "cpu",
    rubric: str = "prmed@1",
) -> dict[str, Any]:
    """API process CPU per judged sample and per cached item for ``n`` fresh samples under ``rubric``.

    ``prmed@1`` is one joint call per sample (the issue's N·L/C); ``prmed@2`` two (its response-layer axes are
    judged on the response alone), so its ideal wall time is calls·L/C and its CPU is also reported per call."""
    bodies = [
        orjson.dumps(
            {
                "rubric": rubric,
                "judge": "bench",
                "samples": [sample_body(i, run) for i in range(j, min(n, j + batch))],
                "options": {"rationale": False},
            }
        )
        for j in range(0, n, batch)
    ]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=api, timeout=300, limits=limits) as client:
        # Warm up code paths with other samples (first-call imports are not per-sample cost).
        warm = orjson.dumps(
            {"rubric": rubric, "judge": "bench", "samples": [sample_body(i, f"warm-{run}") for i in range(64)]}
        )
        await post_all(client, "/v1/score", [warm, warm])
        spy = _py_spy(pid, f"judged-{rubric}")
        before, before_sys = cpu_seconds(pid), cpu_seconds(pid, slice(1, 2))
        wall, payloads = await post_all(client, "/v1/score", bodies)
        judged_cpu = cpu_seconds(pid) - before
        ok = sum(1 for p in payloads for r in p["results"] if all(a["status"] == "ok" for a in r["axes"].values()))
        usage = [p["usage"] for p in payloads]
        await asyncio.sleep(1.0)  # let the group-commit writer finish (its CPU belongs to the judged path)
        judged_cpu = cpu_seconds(pid) - before
        judged_sys = cpu_seconds(pid, slice(1, 2)) - before_sys
        _stop(spy)
        spy = _py_spy(pid, f"cached-{rubric}")
        before = cpu_seconds(pid)
        hits = 0
        for _ in range(rounds):
            _, again = await post_all(client, "/v1/score", bodies)
            hits += sum(1 for p in again for r in p["results"] if r["cached"])
        cached_cpu = cpu_seconds(pid) - before
        _stop(spy)
    calls = sum(u["calls"] for u in usage)
    return {
        "rubric": rubric,
        "wall_s": wall,
        "calls": calls,
        "ideal_s": calls * latency_s / concurrency,
        "efficiency": calls * latency_s / concurrency / wall,
        "ok": ok,
        "judged_cpu_ms": judged_cpu / n * 1000,
        "judged_cpu_per_call_ms": judged_cpu / max(1, calls) * 1000,
        "judged_sys_ms": judged_sys / n * 1000,
        "cached_cpu_ms": cached_cpu / (rounds * n) * 1000,
        "hits": hits,
        "cached_items": rounds * n,
        "prompt_tokens": sum(u["prompt_tokens"] for u in usage),
        "cached_tokens": sum(u.get("cached_tokens", 0) for u in usage),
    }


@contextlib.contextmanager
def worker_process(tree: Path, env: dict[str, str], name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A ``rubric-judge worker`` from the code in ``tree``, stopped at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "judge", "worker", "--name", name, "--max-chunks", "4"],
        cwd=tree,
        env={**os.environ, **env, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # connected to Redis and PostgreSQL
        yield proc
    finally:
        stop(proc, timeout_s=30)


async def worker_cpu(api: str, pid: int, n: int, run: str, rubric: str = "prmed@1") -> dict[str, Any]:
    """Worker process CPU per judged sample: a filter job of ``n`` fresh samples under ``rubric``, upload to done."""
    body = b"\n".join(orjson.dumps(sample_body(i, run)) for i in range(n))
    async with httpx.AsyncClient(base_url=api, timeout=httpx.Timeout(60, read=None)) as client:
        before = cpu_seconds(pid)
        started = time.perf_counter()
        response = await client.post(
            "/v1/jobs",
            params={"judge": "bench", "rubric": rubric, "options": '{"rationale": false}'},
            content=body,
            headers={"content-type": "application/x-ndjson"},
        )
        response.raise_for_status()
        job = response.json()
        while job["state"] not in ("done", "failed", "cancelled"):
            await asyncio.sleep(0.25)
            job = (await client.get(f"/v1/jobs/{job['id']}")).json()
        wall = time.perf_counter() - started
        spent = cpu_seconds(pid) - before
    calls = (job.get("summary") or {}).get("usage", {}).get("calls")
    return {"cpu_ms": spent / n * 1000, "wall_s": wall, "state": job["state"], "counts": job["counts"], "calls": calls}


PY_SPY = os.environ.get("RJ_BENCH_PY_SPY")  # a folder: profile the API process with py-spy into it


def _py_spy(pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """py-spy recording the API process (collapsed stacks in ``$RJ_BENCH_PY_SPY/<name>.txt``), when asked for."""
    if not PY_SPY:
        return None
    Path(PY_SPY).mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args = [
        spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        os.environ.get("RJ_BENCH_PY_SPY_RATE", "250"),
        "--nonblocking",
        *os.environ.get("RJ_BENCH_PY_SPY_ARGS", "").split(),
        "-o",
        f"{PY_SPY}/{name}.txt",
    ]
    proc = subprocess.Popen([*args, "--format", "raw"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the measured work starts
    return proc


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


async def sdk_floor(judge_url: str, rubric: Rubric, n: int, rounds: int = 3) -> dict[str, float]:
    """Process CPU per call of the SDK's raw post alone, and of the whole OpenAI judge (render, post, parse), in this
    process, with the stub in another: what every judged sample costs before the API adds anything.

    The raw post is measured over the SDK's own aiohttp client and over the judges' (:func:`pooled_client`: the
    short path of :mod:`judge.backends.openai.transport`), alternating, ``rounds`` times each; the least of each.
    """
    import httpx2
    import openai

    from judge.backends.openai.client import CompletionPoster, pooled_client

    def sdk_own() -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=judge_url,
            api_key="EMPTY",
            max_retries=0,
            timeout=30,
            http_client=openai.DefaultAioHttpClient(
                limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64), timeout=30
            ),
        )

    def ours() -> openai.AsyncOpenAI:
        return pooled_client(base_url=judge_url, api_key="EMPTY", timeout_s=30, concurrency=64)

    samples = make_samples(n + 64, f"floor{time.time()}")
    payload = orjson.dumps(
        {"model": "stub", "messages": render_prompt(samples[0], rubric, language="zh").messages(), "max_tokens": 2048}
    )
    slots = asyncio.Semaphore(64)

    async def per_call(client: openai.AsyncOpenAI) -> float:
        poster = CompletionPoster(client)

        async def post() -> None:
            async with slots:
                raw = await poster.post(payload)
                assert raw.status_code == 200 and raw.content

        try:
            await asyncio.gather(*(post() for _ in range(64)))
            started = time.process_time()
            await asyncio.gather(*(post() for _ in range(n)))
            return (time.process_time() - started) / n * 1000
        finally:
            await client.close()

    own_ms: list[float] = []
    lean_ms: list[float] = []
    for _ in range(rounds):
        own_ms.append(await per_call(sdk_own()))
        lean_ms.append(await per_call(ours()))
    profile = JudgeProfile.model_validate(
        {"name": "floor", "model": "stub", "base_url": judge_url, "concurrency": 64, "timeout_s": 30}
    )
    judge = OpenAIJudge(profile)
    try:
        await asyncio.gather(*(judge.score(s, rubric) for s in samples[:64]))
        started = time.process_time()
        outcomes = await asyncio.gather(*(judge.score(s, rubric) for s in samples[64:]))
        judge_ms = (time.process_time() - started) / n * 1000
    finally:
        await judge.aclose()
    assert all(o.complete for o in outcomes)
    return {"sdk_post_ms": min(own_ms), "lean_post_ms": min(lean_ms), "judge_ms": judge_ms}
