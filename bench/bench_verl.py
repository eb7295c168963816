"""Issue 11 benchmark: one verl reward batch through each adapter variant, as verl's managers call them.

Setup: the loopback OpenAI-protocol judge answers after L = 100 ms (separate process, judge concurrency 64); the API
runs under ``rubric-judge serve`` (separate process) on PostgreSQL. Each variant scores its own fresh batch of
B = 64 responses (8 prompts x 8), so every call reaches the judge (cold cache):

- ``compute_score`` (async), all samples at once: what the reward loop's ``naive`` manager does (one task each);
- ``compute_score_sync``, one sample after another: what the legacy ``naive`` manager does;
- ``compute_score_batch``: what the ``batch`` manager does (one HTTP request for the batch).

Ideal = ceil(B / 64) x L for the concurrent variants and B x L for the sequential one.

    python bench/bench_verl.py [--latency-ms 100] [--batch 64]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PATIENTS, console, free_port, process, scratch_database, stub_judge  # noqa: E402


def batch(tag: str, size: int) -> tuple[list[str], list[dict[str, Any]]]:
    solutions, infos = [], []
    for i in range(size):
        patient = f"{PATIENTS[(i // 8) % len(PATIENTS)]}（{tag}第{i // 8}号）"
        infos.append({"messages": [{"role": "user", "content": patient}]})
        solutions.append(f"<think>1. 情绪感知：焦急。{tag}{i}</think>请尽快就医，必要时拨打120。（{tag}第{i}版）")
    return solutions, infos


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    from judge.adapters import verl

    judge_port, api_port = free_port(), free_port()
    latency = args.latency_ms / 1000
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, scratch_database() as db, stub_judge(judge_port, args.latency_ms):
        judges = Path(tmp) / "judges.yaml"
        profile = {"name": "loop", "backend": "openai", "model": "m", "base_url": f"http://127.0.0.1:{judge_port}/v1",
                   "concurrency": 64, "timeout_s": 30}  # fmt: skip
        judges.write_text(yaml.safe_dump({"judges": [profile]}), encoding="utf-8")
        env = {"RJ_DATABASE_URL": db, "RJ_JUDGES_FILE": str(judges), "RJ_LOG_LEVEL": "WARNING"}
        serve = [sys.executable, "-m", "judge", "serve", "--port", str(api_port)]
        with process(serve, env=env, ready_url=f"http://127.0.0.1:{api_port}/readyz"):
            options = {"base_url": f"http://127.0.0.1:{api_port}", "judge": "loop"}
            n = args.batch

            solutions, infos = batch("异步", n)
            started = time.perf_counter()

            async def gather() -> list[dict[str, float]]:
                pairs = zip(solutions, infos, strict=True)
                return await asyncio.gather(*(verl.compute_score("prmed", s, None, e, **options) for s, e in pairs))

            results = asyncio.run(gather())
            rows.append(_row("compute_score (reward loop, concurrent)", n, n, time.perf_counter() - started,
                             math.ceil(n / 64) * latency, results))  # fmt: skip

            solutions, infos = batch("同步", n)
            started = time.perf_counter()
            pairs = zip(solutions, infos, strict=True)
            results = [verl.compute_score_sync("prmed", s, None, e, **options) for s, e in pairs]
            rows.append(_row("compute_score_sync (legacy naive, sequential)", n, n, time.perf_counter() - started,
                             n * latency, results))  # fmt: skip

            solutions, infos = batch("批量", n)
            started = time.perf_counter()
            results = verl.compute_score_batch(["prmed"] * n, solutions, [None] * n, infos, **options)
            rows.append(_row("compute_score_batch (batch manager)", n, 1, time.perf_counter() - started,
                             math.ceil(n / 64) * latency, results))  # fmt: skip
    from rich.table import Table

    table = Table(title=f"verl adapter variants: B = {args.batch}, judge latency {args.latency_ms:.0f} ms")
    for column in ("variant", "HTTP requests", "wall", "ideal", "scored"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _row(name: str, n: int, requests: int, wall: float, ideal: float, results: list[dict[str, float]]) -> Any:
    scored = sum(1 for r in results if r["judge_failed"] == 0.0)
    return (name, str(requests), f"{wall:.2f} s", f"{ideal:.2f} s", f"{scored}/{n}")


if __name__ == "__main__":
    main()
