"""Issue 4 benchmark: bulk filtering through queue workers.

Setup: the loopback OpenAI-protocol judge answers after L = 50 ms (separate process); the API (uvicorn) and two
``rubric-judge worker`` processes run on PostgreSQL + Redis; judge concurrency 64 per worker, C = 128 in total;
chunks of 256 lines, 4 chunks in hand per worker, lease 10 s. Each scenario uses fresh samples (no cache or store
hits) and fresh processes (so peak memory is the scenario's own).

1. N = 10,000 and N = 100,000: the JSONL is uploaded (streamed) and followed to the end. Wall time from the first
   byte uploaded to the job's end vs the ideal calls·L/C, with the judge calls the job made (its summary's
   ``usage.calls``; per sample, the rubric's ``prompt_calls``: 2 under prmed@2, 1 under prmed@1); peak resident
   memory of the API and of each worker (sampled every 0.25 s), which should not grow with N; every input line
   exactly once in the results.
2. N = 100,000 again, one worker killed with SIGKILL at 30 % and restarted at once: the time lost, estimated from
   the run's own pre-kill rate (noisy on a shared machine) and from what the kill costs directly: the time until
   the restarted worker holds a chunk (half the capacity missing meanwhile) and until the dead worker's chunks
   are back on the queue (lease expiry; they are re-done, their stored verdicts served from the store).

    python bench/bench_jobs.py [--samples 100000] [--small 10000] [--latency-ms 50] [--concurrency 128]
                               [--rubric prmed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    PATIENTS,
    REDIS_URL,
    RESULTS,
    ROOT,
    console,
    free_port,
    print_table,
    process,
    prompt_call_count,
    scratch_database,
    scratch_prefix,
    stub_judge,
)


def write_samples(path: Path, n: int, tag: str) -> None:
    with path.open("wb") as fh:
        for i in range(n):
            patient = PATIENTS[i % len(PATIENTS)]
            row = {
                "id": f"{tag}-{i}",
                "messages": [{"role": "user", "content": f"{patient}（{tag}第{i}号）"}],
                "reasoning": f"1. 情绪感知：患者焦虑。\n2. 扰动识别：口语化表达。\n3. 话语纠正：{patient}\n"
                f"4. 主诉提取：症状{i}。\n5. 医学推理：需排除急症，编号{tag}{i}。",
                "response": f"请不要太担心，建议尽快就医检查（{tag}回复{i}）。如症状加重请立即拨打120。",
            }
            fh.write(orjson.dumps(row) + b"\n")


class PeakRSS:
    """Peak resident memory of some processes, sampled in a thread."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s = every_s
        self.peaks: dict[str, int] = {}
        self._procs: dict[str, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self._procs[name] = psutil.Process(pid)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for name, proc in list(self._procs.items()):
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks.get(name, 0), rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_worker(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "judge", "worker", "--name", name, "--max-chunks", "4"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Outcome:
    n: int
    wall_s: float = 0.0
    upload_s: float = 0.0
    server_s: float = 0.0
    peaks_mb: dict[str, float] = field(default_factory=dict)
    lines_once: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    # Judge calls the job made (its summary's usage; store and cache hits cost none).
    calls: int = 0
    killed_at_s: float | None = None
    # After the kill: when the restarted worker first held a chunk, and when the dead one's chunks were back.
    restart_gap_s: float | None = None
    reclaimed_s: float | None = None
    load: list[float] = field(default_factory=list)
    # (seconds since the upload began, items done), every 0.25 s.
    timeline: list[tuple[float, int]] = field(default_factory=list)

    def lost_to_kill(self) -> tuple[float, float] | None:
        """(expected wall at the pre-kill rate, time lost): the rate from 5 % done to the kill, extrapolated."""
        if self.killed_at_s is None:
            return None
        start = next((t, d) for t, d in self.timeline if d >= 0.05 * self.n)
        at_kill = max((t, d) for t, d in self.timeline if t <= self.killed_at_s)
        rate = (at_kill[1] - start[1]) / (at_kill[0] - start[0])
        expected = at_kill[0] + (self.n - at_kill[1]) / rate
        return expected, self.wall_s - expected


async def file_body(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            yield block


@dataclass
class Kill:
    fraction: float
    action: Any
    db_url: str
    victim: str
    replacement: str


async def follow(
    api: str, rubric: str, source: Path, n: int, kill: Kill | None, outcome: Outcome
) -> tuple[float, float, dict[str, Any], float | None]:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    async with httpx.AsyncClient(base_url=api, timeout=httpx.Timeout(60, read=None)) as client:
        started = time.perf_counter()
        response = await client.post(
            "/v1/jobs",
            params={"rubric": rubric, "judge": "bench", "options": '{"rationale": false}'},
            content=file_body(source),
            headers={"content-type": "application/x-ndjson"},
        )
        response.raise_for_status()
        upload_s = time.perf_counter() - started
        job = response.json()
        killed_at = None
        db = None
        if kill is not None:
            db = await asyncpg.connect(make_url(kill.db_url).set(drivername="postgresql").render_as_string(False))
        try:
            while job["state"] not in ("done", "failed", "cancelled"):
                await asyncio.sleep(0.25)
                job = (await client.get(f"/v1/jobs/{job['id']}")).json()
                now = time.perf_counter() - started
                outcome.timeline.append((now, int(job["counts"]["done"])))
                if kill is None or db is None:
                    continue
                if killed_at is None and job["counts"]["done"] >= kill.fraction * n:
                    killed_at = now
                    kill.action()
                elif killed_at is not None and (outcome.restart_gap_s is None or outcome.reclaimed_s is None):
                    held = dict(
                        await db.fetch(
                            "SELECT owner, count(*) FROM job_chunks WHERE state = 'running' AND owner = ANY($1) "
                            "GROUP BY owner",
                            [kill.victim, kill.replacement],
                        )
                    )
                    if outcome.restart_gap_s is None and held.get(kill.replacement):
                        outcome.restart_gap_s = now - killed_at
                    if outcome.reclaimed_s is None and not held.get(kill.victim):
                        outcome.reclaimed_s = now - killed_at
        finally:
            if db is not None:
                await db.close()
        wall = time.perf_counter() - started
        return wall, upload_s, job, killed_at


async def every_line_once(api: str, job_id: str, n: int) -> bool:
    seen = bytearray(n + 1)
    async with (
        httpx.AsyncClient(base_url=api, timeout=httpx.Timeout(60, read=None)) as client,
        client.stream("GET", f"/v1/jobs/{job_id}/results") as response,
    ):
        async for raw in response.aiter_lines():
            if not raw:
                continue
            line = int(raw[8 : raw.index(",")])
            if seen[line]:
                return False
            seen[line] = 1
    return all(seen[1:])


def scenario(
    name: str,
    n: int,
    env: dict[str, str],
    tmp: Path,
    args: argparse.Namespace,
    kill_fraction: float | None = None,
) -> Outcome:
    source = tmp / f"{name}.jsonl"
    write_samples(source, n, name)
    api_port = free_port()
    api_args = [sys.executable, "-m", "judge", "serve", "--port", str(api_port)]
    api = f"http://127.0.0.1:{api_port}"
    outcome = Outcome(n, load=list(os.getloadavg()))
    workers = [start_worker(env, f"{name}-w1"), start_worker(env, f"{name}-w2")]
    try:
        with process(api_args, env=env, ready_url=f"{api}/healthz") as api_proc, PeakRSS() as rss:
            rss.watch("api", api_proc.pid)
            for i, worker in enumerate(workers, start=1):
                rss.watch(f"worker {i}", worker.pid)
            time.sleep(3)  # workers connected

            def kill_and_restart() -> None:
                os.kill(workers[0].pid, signal.SIGKILL)
                workers[0].wait()
                workers[0] = start_worker(env, f"{name}-w1-restarted")
                rss.watch("worker 1 (restarted)", workers[0].pid)

            kill = None
            if kill_fraction is not None:
                victim, replacement = f"{name}-w1", f"{name}-w1-restarted"
                kill = Kill(kill_fraction, kill_and_restart, env["RJ_DATABASE_URL"], victim, replacement)
            wall, upload_s, job, killed_at = asyncio.run(follow(api, args.rubric, source, n, kill, outcome))
            outcome.wall_s, outcome.upload_s, outcome.killed_at_s = wall, upload_s, killed_at
            outcome.counts = job["counts"]
            outcome.calls = int(((job.get("summary") or {}).get("usage") or {}).get("calls", 0))
            if job.get("started_at") and job.get("finished_at"):
                from datetime import datetime

                outcome.server_s = (
                    datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
                ).total_seconds()
            outcome.lines_once = asyncio.run(every_line_once(api, job["id"], n))
            outcome.peaks_mb = {k: v / 2**20 for k, v in sorted(rss.peaks.items())}
    finally:
        for worker in workers:
            stop(worker)
    outcome.load += list(os.getloadavg())
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=128, help="in total, over the 2 workers")
    parser.add_argument("--stub-workers", type=int, default=1)
    parser.add_argument("--lease-s", type=float, default=10.0)
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--rubric", default="prmed", help="prmed@1 for one call per sample, as older tables")
    args = parser.parse_args()
    rubric_ref, per_sample = prompt_call_count(args.rubric, "joint")

    judge_port = free_port()
    prefix = scratch_prefix("jobs")
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database() as db_url,
        stub_judge(judge_port, args.latency_ms, args.stub_workers),
    ):
        judges = Path(tmp) / "judges.yaml"
        judges.write_text(yaml.safe_dump({"judges": [{
            "name": "bench", "backend": "openai", "model": "bench-judge",
            "base_url": f"http://127.0.0.1:{judge_port}/v1", "concurrency": args.concurrency // 2,
            "timeout_s": 30, "max_retries": 2,
        }]}))  # fmt: skip
        env = {
            "RJ_DATABASE_URL": db_url, "RJ_REDIS_URL": REDIS_URL, "RJ_REDIS_PREFIX": prefix,
            "RJ_JUDGES_FILE": str(judges), "RJ_LOG_LEVEL": "WARNING", "RJ_JOB_LEASE_S": str(args.lease_s),
        }  # fmt: skip
        small = scenario("small", args.small, env, Path(tmp), args)
        console.print(f"N={args.small}: {small.wall_s:.1f} s, peaks {small.peaks_mb}")
        big = scenario("big", args.samples, env, Path(tmp), args)
        console.print(f"N={args.samples}: {big.wall_s:.1f} s, peaks {big.peaks_mb}")
        killed = None
        if not args.skip_kill:
            killed = scenario("kill", args.samples, env, Path(tmp), args, kill_fraction=0.3)
            console.print(f"N={args.samples} with a kill: {killed.wall_s:.1f} s, peaks {killed.peaks_mb}")

    latency = args.latency_ms / 1000
    rows: list[tuple[str, Any, Any, Any]] = []
    for label, o in ((f"N={args.small:,}", small), (f"N={args.samples:,}", big)):
        # The calls the job made, C at a time: a sample takes as many calls as its rubric's prompts.
        ideal = o.calls * latency / args.concurrency
        eff = ideal / o.wall_s
        rows += [
            (f"{label}: wall, upload start to job end (s)", f"{o.wall_s:.1f}", "", None),
            (
                f"{label}: judge calls (summary usage.calls)",
                f"{o.calls:,}",
                f"{o.n * per_sample:,} ({per_sample} per sample)",
                o.calls == o.n * per_sample,
            ),
            (f"{label}: ideal calls·L/C (s)", f"{ideal:.1f}", "", None),
            (
                f"{label}: throughput (samples/s)",
                f"{o.n / o.wall_s:,.0f}",
                f"{args.concurrency / (latency * per_sample):,.0f} ideal",
                None,
            ),
            (f"{label}: efficiency ideal/wall", f"{eff:.2f}", ">= 0.85", eff >= 0.85),
            (f"{label}: upload (s)", f"{o.upload_s:.1f}", "", None),
            (f"{label}: every line exactly once", str(o.lines_once), "True", o.lines_once),
        ]
        for proc, mb in o.peaks_mb.items():
            rows.append((f"{label}: peak RSS {proc} (MB)", f"{mb:.0f}", "<= 300", mb <= 300))
    for proc in small.peaks_mb:
        if proc in big.peaks_mb:
            growth = big.peaks_mb[proc] - small.peaks_mb[proc]
            rows.append(
                (f"peak RSS growth {proc}, {args.small:,} -> {args.samples:,} (MB)", f"{growth:+.0f}", "flat", None)
            )
    if killed is not None:
        expected, lost = killed.lost_to_kill() or (float("nan"), float("nan"))
        at = killed.killed_at_s or 0.0
        rows += [
            (
                f"N={args.samples:,}, worker 1 killed at {at:.0f} s, restarted: wall (s)",
                f"{killed.wall_s:.1f}",
                "",
                None,
            ),
            ("  same run's pre-kill rate, extrapolated (s)", f"{expected:.1f}", "", None),
            ("  time lost vs that rate (s; other load varies)", f"{lost:.1f}", "", None),
            ("  kill -> restarted worker holds a chunk (s)", f"{killed.restart_gap_s or float('nan'):.1f}", "", None),
            (
                "  kill -> dead worker's chunks back on the queue (s)",
                f"{killed.reclaimed_s or float('nan'):.1f}",
                f"<= lease {args.lease_s:.0f} s + reaper",
                None,
            ),
            ("  capacity lost: gap x 1/2 of the workers (s)", f"{(killed.restart_gap_s or 0) / 2:.1f}", "", None),
            ("  vs the run without a kill (s; other load)", f"{killed.wall_s - big.wall_s:+.1f}", "", None),
            ("  every line exactly once", str(killed.lines_once), "True", killed.lines_once),
            # A re-done chunk's verdicts stored before the kill are store hits: no calls in the summary.
            ("  judge calls (summary usage.calls)", f"{killed.calls:,}", "", None),
        ]
        for proc, mb in killed.peaks_mb.items():
            rows.append((f"  peak RSS {proc} (MB)", f"{mb:.0f}", "<= 300", mb <= 300))
    loads = ", ".join(f"{o.load[0]:.2f}→{o.load[3]:.2f}" for o in (small, big, killed) if o is not None)
    title = (
        f"Jobs: {rubric_ref}, 2 workers, L={args.latency_ms:.0f} ms, C={args.concurrency} in total, PostgreSQL + Redis "
        f"(load average 1 min, start→end of each run: {loads})"
    )
    print_table(title, rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "args": vars(args),
        "rubric": rubric_ref,
        "expected_calls_per_sample": per_sample,
        "small": small.__dict__,
        "big": big.__dict__,
        "killed": killed.__dict__ if killed else None,
    }
    (RESULTS / "jobs.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
