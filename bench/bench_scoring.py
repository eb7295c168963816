"""Issue 2 benchmark: scoring throughput through the HTTP API, then the cached path.

Setup: the loopback OpenAI-protocol judge answers after L = 100 ms (separate process); the API runs
under uvicorn (separate process) on PostgreSQL + Redis; profile concurrency C = 64.
1. 1,024 fresh samples in batches of 128 (sent together): wall time vs the ideal calls·L/C, with the judge calls
   the run made (the API's ``usage.calls``); calls per sample against the rubric's (``prompt_calls``: 2 under
   prmed@2, whose response-layer axes are judged in a call of their own without the CoT; 1 under prmed@1).
2. The same batches again, all cache hits from Redis: verdicts per second, and the API's p50/p99 time
   per 128-item cached batch (sequential requests, so each one is timed alone).

    python bench/bench_scoring.py [--samples 1024] [--batch 128] [--concurrency 64] [--latency-ms 100]
                                  [--rubric prmed]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    PATIENTS,
    REDIS_URL,
    RESULTS,
    console,
    free_port,
    judge_call_count,
    percentile,
    post_all,
    print_table,
    process,
    prompt_call_count,
    scratch_database,
    scratch_prefix,
    stub_judge,
)


def make_samples(n: int) -> list[dict[str, object]]:
    samples = []
    for i in range(n):
        patient = PATIENTS[i % len(PATIENTS)]
        samples.append(
            {
                "id": f"s{i}",
                "messages": [{"role": "user", "content": f"{patient}（第{i}号患者）"}],
                "reasoning": f"1. 情绪感知：患者焦虑。\n2. 扰动识别：口语化表达。\n3. 话语纠正：{patient}\n"
                f"4. 主诉提取：症状{i}。\n5. 医学推理：需排除急症，编号{i}。",
                "response": f"请不要太担心，建议尽快就医检查（回复{i}）。如症状加重请立即拨打120。",
            }
        )
    return samples


async def run(
    api: str, rubric: str, n: int, batch: int, latency_s: float, concurrency: int, rounds: int, seq: int
) -> dict[str, Any]:
    samples = make_samples(n)
    bodies = [
        orjson.dumps(
            {"rubric": rubric, "judge": "bench", "samples": samples[i : i + batch], "options": {"rationale": False}}
        )
        for i in range(0, n, batch)
    ]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=api, timeout=120, limits=limits) as client:
        wall, payloads = await post_all(client, "/v1/score", bodies)
        results = [r for p in payloads for r in p["results"]]  # type: ignore[attr-defined]
        ok = sum(1 for r in results if all(a["status"] == "ok" for a in r["axes"].values()))
        usage_calls = sum(p["usage"]["calls"] for p in payloads)  # type: ignore[index]
        calls = judge_call_count((await client.get("/metrics")).text)
        # The calls the run made, not N: a sample takes as many calls as its rubric's prompts.
        ideal = usage_calls * latency_s / concurrency

        # Cached: several rounds of all batches at once (throughput), then one batch at a time (latency).
        del payloads, results
        await post_all(client, "/v1/score", bodies)  # warm the connection pool and code paths
        # The client is Python too: its own collector pauses would be timed as the API's latency.
        gc.collect()
        gc.freeze()
        cached_wall = 0.0
        hits = 0
        for _ in range(rounds):
            w, again = await post_all(client, "/v1/score", bodies)
            cached_wall += w
            hits += sum(1 for p in again for r in p["results"] if r["cached"])  # type: ignore[attr-defined]
            del again
        latencies, server_ms = [], []
        for i in range(seq):
            body = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            r = await client.post("/v1/score", content=body, headers={"content-type": "application/json"})
            latencies.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            server_ms.append(float(r.headers["server-timing"].split("dur=")[1]))
    return {
        "wall_s": wall,
        "ideal_s": ideal,
        "efficiency": ideal / wall,
        "ok_items": ok,
        "usage_calls": usage_calls,
        "judge_calls_per_sample": calls / n,
        "usage_calls_per_sample": usage_calls / n,
        "cached_hit_fraction": hits / (rounds * n),
        "cached_verdicts_per_s": rounds * n / cached_wall,
        "cached_batch_p50_ms": percentile(server_ms, 50),
        "cached_batch_p99_ms": percentile(server_ms, 99),
        "cached_roundtrip_p50_ms": percentile(latencies, 50),
        "cached_roundtrip_p99_ms": percentile(latencies, 99),
        "cached_batch_server_ms": server_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=20, help="cached rounds of all batches")
    parser.add_argument("--sequential", type=int, default=300, help="cached single-batch requests timed")
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--rubric", default="prmed", help="prmed@1 for one call per sample, as older tables")
    args = parser.parse_args()
    rubric_ref, per_sample = prompt_call_count(args.rubric, "joint")

    judge_port, api_port = free_port(), free_port()
    prefix = scratch_prefix("scoring")
    with tempfile.TemporaryDirectory() as tmp, scratch_database() as db_url, stub_judge(judge_port, args.latency_ms):
        judges = Path(tmp) / "judges.yaml"
        judges.write_text(yaml.safe_dump({"judges": [{
            "name": "bench", "backend": "openai", "model": "bench-judge",
            "base_url": f"http://127.0.0.1:{judge_port}/v1", "concurrency": args.concurrency,
            "timeout_s": 30, "max_retries": 2,
        }]}))  # fmt: skip
        env = {
            "RJ_DATABASE_URL": db_url, "RJ_REDIS_URL": REDIS_URL, "RJ_REDIS_PREFIX": prefix,
            "RJ_JUDGES_FILE": str(judges), "RJ_LOG_LEVEL": "WARNING",
        }  # fmt: skip
        api_args = [sys.executable, "-m", "judge", "serve", "--port", str(api_port), "--workers", str(args.api_workers)]
        with process(api_args, env=env, ready_url=f"http://127.0.0.1:{api_port}/healthz"):
            m = asyncio.run(
                run(f"http://127.0.0.1:{api_port}", args.rubric, args.samples, args.batch, args.latency_ms / 1000,
                    args.concurrency, args.rounds, args.sequential)
            )  # fmt: skip
    title = (
        f"/v1/score: {rubric_ref}, N={args.samples}, batches of {args.batch}, L={args.latency_ms:.0f} ms, "
        f"C={args.concurrency}, PostgreSQL + Redis, {args.api_workers} API worker(s)"
    )
    calls, rate, p99 = m["judge_calls_per_sample"], m["cached_verdicts_per_s"], m["cached_batch_p99_ms"]
    print_table(title, [
        ("wall time (s)", f"{m['wall_s']:.3f}", "", None),
        ("judge calls (usage.calls)", f"{m['usage_calls']:,}", f"{per_sample * args.samples:,}",
         m["usage_calls"] == per_sample * args.samples),
        ("ideal calls·L/C (s)", f"{m['ideal_s']:.3f}", "", None),
        ("efficiency ideal/wall", f"{m['efficiency']:.3f}", ">= 0.90", m["efficiency"] >= 0.90),
        ("items with every axis ok", f"{m['ok_items']}/{args.samples}", "all", m["ok_items"] == args.samples),
        ("judge calls per sample (/metrics)", f"{calls:.3f}", f"{per_sample} (joint, {rubric_ref})",
         calls == per_sample),
        ("cached: hit fraction", f"{m['cached_hit_fraction']:.3f}", "1.0", m["cached_hit_fraction"] == 1.0),
        ("cached: verdicts per second", f"{rate:,.0f}", ">= 20,000", rate >= 20000),
        ("cached: API p50 per 128-item batch (ms)", f"{m['cached_batch_p50_ms']:.2f}", "", None),
        ("cached: API p99 per 128-item batch (ms)", f"{p99:.2f}", "<= 10", p99 <= 10),
        ("cached: client round trip p50 / p99 (ms)",
         f"{m['cached_roundtrip_p50_ms']:.2f} / {m['cached_roundtrip_p99_ms']:.2f}", "", None),
    ])  # fmt: skip
    load = os.getloadavg()
    console.print(f"load average at the end (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scoring.json").write_text(
        json.dumps(
            {"args": vars(args), "rubric": rubric_ref, "expected_calls_per_sample": per_sample, "loadavg": load, **m}
        )
    )


if __name__ == "__main__":
    main()
