"""Reliability figures (docs/reliability.md): load held, faults survived, answered verdicts lost.

Real processes: the API under uvicorn (a subprocess, stopped with a real SIGTERM), the loopback judge (a
subprocess), a PRIVATE PostgreSQL cluster (initdb + pg_ctl on a free port) that is stopped mid-load. The
shared PostgreSQL and Redis are never touched. Every answered verdict id is looked up in the store at the end
of each scenario: "lost" counts the ones missing.

    python bench/bench_reliability.py [--requests 2000] [--clients 32] [--outage-s 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PATIENTS, ROOT, console, free_port, stub_judge, wait_http  # noqa: E402
from tests.support.private_services import PrivatePostgres  # noqa: E402


def _body(tag: str, i: int) -> dict[str, Any]:
    return {
        "rubric": "prmed",
        "judge": "loop",
        "samples": [
            {
                "messages": [{"role": "user", "content": f"{PATIENTS[i % len(PATIENTS)]}（{tag}第{i}号）"}],
                "reasoning": "患者焦虑，口语化描述，需排除急症。",
                "response": f"请先别慌，如胸痛持续或伴出汗气短，请立即就医（{tag}-{i}）。",
            }
        ],
        "options": {"rationale": False},
    }


class Api:
    """``uvicorn api.main:app`` in a child process, with settings from the environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "30",
            ],  # fmt: skip
            cwd=ROOT,
            env={**os.environ, **self._env},
            stdout=subprocess.DEVNULL,
        )
        wait_http(f"{self.url}/healthz")

    def sigterm(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


async def _load(url: str, tag: str, requests: int, clients: int, ids: list[str] | None = None) -> dict[str, Any]:
    ids = [] if ids is None else ids
    errors = pending = 0
    next_index = iter(range(requests))

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors, pending
        for i in next_index:
            try:
                resp = await client.post(f"{url}/v1/score", json=_body(tag, i))
            except httpx.HTTPError:
                errors += 1
                continue
            if resp.status_code != 200:
                errors += 1
                continue
            payload = resp.json()
            pending += payload["usage"]["pending_writes"]
            ids.extend(r["verdict_id"] for r in payload["results"] if r["verdict_id"])

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return {"ids": ids, "errors": errors, "pending": pending}


async def _missing(db_url: str, ids: list[str], timeout_s: float = 120.0) -> int:
    """Answered ids not in the store, after giving the writer (and a replay) up to ``timeout_s`` to land them."""
    from sqlalchemy import select

    from judge.store.database import create_engine
    from judge.store.models import VerdictRow

    engine = create_engine(db_url)
    wanted = set(ids)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            found: set[str] = set()
            async with engine.connect() as conn:
                chunk = list(wanted)
                for start in range(0, len(chunk), 1000):
                    rows = await conn.execute(
                        select(VerdictRow.id).where(VerdictRow.id.in_(chunk[start : start + 1000]))
                    )
                    found.update(row[0] for row in rows)
            missing = len(wanted - found)
            if missing == 0 or time.monotonic() > deadline:
                return missing
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> list[tuple[str, str, str, str, int]]:
    rows: list[tuple[str, str, str, str, int]] = []
    work = Path(tempfile.mkdtemp(prefix="rj-bench-reliability-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="rj-bench-pg-"))  # its own: the cluster runs as user postgres
    cluster = PrivatePostgres(pg_dir)
    cluster.start()
    judge_port = free_port()
    judges = work / "judges.yaml"
    judges.write_text(
        yaml.safe_dump({"judges": [{"name": "loop", "backend": "openai", "model": "m", "concurrency": 64,
                                    "base_url": f"http://127.0.0.1:{judge_port}/v1", "timeout_s": 30}]}),
        encoding="utf-8",
    )  # fmt: skip
    from judge.store.migrate import upgrade

    await upgrade(cluster.url)
    env = {
        "RJ_DATABASE_URL": cluster.url,
        "RJ_JUDGES_FILE": str(judges),
        "RJ_SPOOL_DIR": str(work / "spool"),
        "RJ_WRITE_WAIT_S": "1",
        "RJ_WRITE_FLUSH_TIMEOUT_S": "2",
        "RJ_LOG_LEVEL": "WARNING",
    }
    try:
        with stub_judge(judge_port, latency_ms=args.latency_ms):
            api = Api(env)
            api.start()
            console.print("[bold]1. load held")
            result = await _load(api.url, "load", args.requests, args.clients)
            missing = await _missing(cluster.url, result["ids"])
            rows.append(("load held", f"{args.requests} requests, {args.clients} clients", "none",
                         f"{result['errors']} errors", missing))  # fmt: skip

            console.print(f"[bold]2. PostgreSQL stopped {args.outage_s:.0f} s mid-load")

            async def outage() -> None:
                await asyncio.sleep(1.0)
                await asyncio.to_thread(cluster.stop, "immediate")
                await asyncio.sleep(args.outage_s)
                await asyncio.to_thread(cluster.start)

            result, _ = await asyncio.gather(_load(api.url, "pg", args.requests, args.clients), outage())
            missing = await _missing(cluster.url, result["ids"])
            load_text = f"{args.requests} requests, {args.clients} clients"
            pending_text = f"{result['pending']} answers pending at the time"
            rows.append((f"PostgreSQL stopped {args.outage_s:.0f} s", load_text, pending_text,
                         f"{result['errors']} errors", missing))  # fmt: skip

            console.print("[bold]3. SIGTERM to the API mid-load while PostgreSQL is down")
            await asyncio.to_thread(cluster.stop, "immediate")
            answered: list[str] = []
            load = asyncio.create_task(_load(api.url, "term", args.requests, args.clients, answered))
            while len(answered) < args.requests // 4:  # mid-load: a quarter answered, the rest in flight or to come
                await asyncio.sleep(0.01)
            code = await asyncio.to_thread(api.sigterm)
            result = await load
            spooled = sum(1 for p in (work / "spool").glob("verdicts-*.jsonl") for line in p.open("rb") if line.strip())
            await asyncio.to_thread(cluster.start)
            restarted = Api(env)
            restarted.start()  # replays the spool at start-up
            missing = await _missing(cluster.url, result["ids"])
            rows.append(("API SIGTERM mid-load, PostgreSQL down", f"{len(result['ids'])} answered, then exit ({code})",
                         f"{spooled} verdicts spooled, replayed at restart",
                         f"{result['errors']} sent after the exit (refused)", missing))  # fmt: skip
            restarted.sigterm()
    finally:
        cluster.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)
    return rows


async def in_process(args: argparse.Namespace) -> list[tuple[str, str, str, str, int]]:
    """Faults that need a scripted judge or a private Redis: the app in this process, the loopback judge in a
    thread (scriptable), a private PostgreSQL and a private redis-server."""
    from api.app import create_app
    from judge.jobs.schemas import JobOptions, JobSpec
    from judge.jobs.service import JobsService
    from judge.jobs.worker import WorkerConfig, build_worker, close_worker
    from judge.settings import Settings
    from judge.store.migrate import upgrade
    from tests.support.openai_server import HTTPError, OpenAIServer, Slow
    from tests.support.private_services import PrivateRedis

    rows: list[tuple[str, str, str, str, int]] = []
    pg_dir = Path(tempfile.mkdtemp(prefix="rj-bench-pg-"))
    work = Path(tempfile.mkdtemp(prefix="rj-bench-reliability-"))
    cluster = PrivatePostgres(pg_dir)
    cluster.start()
    redis = PrivateRedis(work / "redis")
    redis.start()
    server = OpenAIServer().start()
    try:
        await upgrade(cluster.url)
        judges = work / "judges.yaml"
        judges.write_text(
            yaml.safe_dump({"judges": [{"name": "loop", "backend": "openai", "model": "m", "concurrency": 16,
                                        "base_url": server.url, "timeout_s": 120, "max_retries": 2}]}),
            encoding="utf-8",
        )  # fmt: skip
        settings = Settings(  # type: ignore[call-arg]
            database_url=cluster.url, judges_file=judges, spool_dir=work / "spool", judge_grace_s=2.0,
            redis_url=redis.url, _env_file=None,
        )  # fmt: skip
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rj", timeout=120) as client:
                console.print("[bold]4. judge stalls: 64 requests whose judge never answers, then a fresh one")
                server.script(*[Slow(delay_s=600.0)] * 64)
                stalled = [
                    client.post("/v1/score", json={**_body("stall", i), "options": {"deadline_ms": 2000}})
                    for i in range(64)
                ]
                answers = await asyncio.gather(*stalled)
                timeouts = sum(r.json()["usage"]["timed_out"] for r in answers)
                await asyncio.sleep(settings.judge_grace_s + 0.5)
                server.reset()
                fresh = await client.post("/v1/score", json={**_body("fresh", 0), "options": {"deadline_ms": 5000}})
                judged = fresh.json()["results"][0]["verdict_id"] is not None
                ids = [fresh.json()["results"][0]["verdict_id"]] if judged else []
                rows.append(("judge stalls (16 slots)", "64 stalled requests, deadline 2 s, grace 2 s",
                             f"{timeouts} timed out; a fresh request judged within its 5 s deadline: "
                             f"{'yes' if judged else 'NO'}", f"{sum(r.status_code != 200 for r in answers)} errors",
                             await _missing(cluster.url, ids)))  # fmt: skip

                console.print("[bold]5. 429/500 storm from the judge")
                storm = [HTTPError(429, headers={"retry-after": "0"}), HTTPError(500)] * 150
                server.script(*storm)
                answers = await asyncio.gather(*(client.post("/v1/score", json=_body("storm", i)) for i in range(200)))
                ids = [r["verdict_id"] for a in answers if a.status_code == 200 for r in a.json()["results"]]
                invented = sum(
                    1
                    for a in answers
                    for r in a.json()["results"]
                    for axis in r["axes"].values()
                    if axis["status"] != "ok" and axis["score"] is not None
                )
                failed = sum(1 for a in answers for r in a.json()["results"] if r["error"])
                rows.append(("429/500 storm", "200 requests, 300 error answers scripted",
                             f"{failed} items judge_error after retries, {invented} invented scores",
                             f"{sum(a.status_code != 200 for a in answers)} errors",
                             await _missing(cluster.url, ids)))  # fmt: skip
                server.reset()

            console.print("[bold]6. Redis killed mid-job (a worker running), restarted empty")
            jobs = JobsService(app.state.runtime)
            worker = build_worker(settings, WorkerConfig(lease_s=5, poll_delay_s=0.02, queue_check_s=1.0),
                                  handle_signals=False)  # fmt: skip
            task = asyncio.create_task(worker.async_run())
            try:
                server.latency_s = 0.05

                async def lines() -> Any:
                    for i in range(args.job_items):
                        yield orjson.dumps(_body("job", i)["samples"][0]) + b"\n"

                job_id = str((await jobs.create_from_stream(JobSpec(judge="loop", options=JobOptions(chunk_size=10)),
                                                            lines()))["id"])  # fmt: skip
                while (await jobs.get(job_id))["counts"]["done"] < args.job_items // 5:
                    await asyncio.sleep(0.05)
                redis.stop()
                await asyncio.sleep(args.outage_s)
                survived = not task.done()
                redis.start()
                deadline = time.monotonic() + 300
                while (await jobs.get(job_id))["state"] != "done" and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                counts = (await jobs.get(job_id))["counts"]
                rows.append((f"Redis killed {args.outage_s:.0f} s mid-job, back empty",
                             f"{args.job_items} items, 1 worker",
                             f"worker survived: {'yes' if survived else 'NO'}; job {(await jobs.get(job_id))['state']}"
                             " without a restart", f"{counts['failed']} items failed",
                             args.job_items - counts["done"]))  # fmt: skip
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await close_worker(worker)
                await jobs.aclose()
                server.latency_s = 0.0
    finally:
        server.stop()
        redis.stop()
        cluster.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--outage-s", type=float, default=8.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--job-items", type=int, default=400)
    parser.add_argument("--only", choices=["processes", "in-process"], default=None)
    options = parser.parse_args()
    figures = [] if options.only == "in-process" else asyncio.run(main(options))
    if options.only != "processes":
        figures += asyncio.run(in_process(options))
    print("| scenario | load | fault detail | errors | answered verdicts lost |")  # noqa: T201 - the table
    print("|---|---|---|---|---|")  # noqa: T201
    for scenario, load, detail, errors, lost in figures:
        print(f"| {scenario} | {load} | {detail} | {errors} | **{lost}** |")  # noqa: T201
