"""Issue 3 benchmark: RL reward serving through the HTTP API.

Setup: the loopback OpenAI-protocol judge answers after L = 100 ms (separate process; ``--tie-rate``: that share
of rollouts gets its prompt's scores, as a strict judge gives similar rollouts the same integers;
``--vary-confidence``: each score token carries its own top-logprob mass); the API runs under uvicorn (separate
process) on PostgreSQL + Redis. Every scenario starts with a cold cache (its own texts or its own profile).

1. OpenRLHF-style: N = 1,024 rollouts, one ``POST /get_reward`` per rollout from 256 concurrent clients, each
   with OpenRLHF's rules (a new aiohttp session per request, 180 s timeout, 5 tries 1 s apart). Throughput,
   p50/p99 latency, efficiency = ideal / wall with ideal = max(ceil(N / clients), ceil(calls / C)) · L: one
   request per client at a time, and the judge calls the run made (the API's /metrics) C at a time.
2. TRL-style: one ``POST /v1/rewards`` of 64 prompts × 8 completions, judge concurrency C = 64:
   wall vs the ideal ceil(calls / C) · L with the calls the batch made (``usage.calls``; goal: within 10 %).
   The same batch with logprobs: the fraction of zero-variance groups with and without continuous
   (expected-score) rewards.
3. Group mode vs joint mode on the same 64 × 8 batch: judge calls, tokens, wall.

Calls are measured and compared with the rubric's (``prompt_calls``): under prmed@2 a sample takes 2 joint calls
(its response-layer axes are judged without the CoT) and a group 2 calls per display order (``permutations``
orders, 2 by default); under prmed@1, 1 and 1.

    python bench/bench_rewards.py [--latency-ms 100] [--rollouts 1024] [--clients 256] [--prompts 64] [--g 8]
                                  [--rubric prmed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
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
    print_table,
    process,
    prompt_call_count,
    scratch_database,
    scratch_prefix,
    timed_post,
)

SYSTEM = "你是一名耐心、专业的全科医生。"


def patient(run: str, i: int) -> str:
    return f"{PATIENTS[i % len(PATIENTS)]}（{run}第{i}号患者）"


def completion(i: int, k: int) -> str:
    return (
        f"<think>1. 情绪感知：患者焦虑。\n2. 扰动识别：口语化表达。\n3. 话语纠正：患者{i}的症状。\n"
        f"4. 主诉提取：症状{i}。\n5. 医学推理：需排除急症（草稿{k}）。</think>"
        f"请不要太担心，建议尽快就医检查（回复{i}-{k}）。如症状加重请立即拨打120。"
    )


def qwen_prompt(text: str) -> str:
    return f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


# --- 1. OpenRLHF-style ----------------------------------------------------------------------------------------


async def openrlhf_post(url: str, payload: dict[str, Any], tries: int = 5) -> tuple[dict[str, Any] | None, int]:
    """openrlhf/utils/agent.py ``_post_request``: a new session per try, 180 s timeout, 1 s between tries."""
    timeout = aiohttp.ClientTimeout(total=180)
    for attempt in range(1, tries + 1):
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, json=payload) as response:
                response.raise_for_status()
                return await response.json(), attempt
        except Exception:
            await asyncio.sleep(1)
    return None, tries


async def metrics_calls(api: str, judge: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{api}/metrics") as response:
        return judge_call_count(await response.text(), judge)


async def openrlhf_load(api: str, rubric: str, rollouts: int, clients: int, run: str) -> dict[str, Any]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(rollouts):
        queue.put_nowait(i)
    latencies: list[float] = []
    failed_requests = 0
    judge_failed = 0
    retried = 0

    async def client() -> None:
        nonlocal failed_requests, judge_failed, retried
        while not queue.empty():
            i = queue.get_nowait()
            prompt = qwen_prompt(patient(run, i))
            payload = {"query": [prompt + completion(i, 0) + "<|im_end|>"], "prompts": [prompt], "labels": [None]}
            started = time.perf_counter()
            answer, attempts = await openrlhf_post(f"{api}/get_reward?rubric={rubric}", payload)
            latencies.append((time.perf_counter() - started) * 1000)
            retried += attempts - 1
            if answer is None:
                failed_requests += 1
            else:
                judge_failed += int(sum(answer["extra_logs"]["judge_failed"]))

    before = await metrics_calls(api, "bench-openrlhf")
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        # /get_reward answers no usage: the API's own count of judge calls for this profile.
        "calls": int(await metrics_calls(api, "bench-openrlhf") - before),
        "throughput_per_s": rollouts / wall,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "failed_requests": failed_requests,
        "retried_requests": retried,
        "judge_failed_items": judge_failed,
    }


# --- 2./3. one GRPO batch -------------------------------------------------------------------------------------


def grpo_batch(run: str, prompts: int, g: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{i}-{k}", "messages": [{"role": "user", "content": patient(run, i)}], "completion": completion(i, k)}
        for i in range(prompts)
        for k in range(g)
    ]


async def one_batch(api: str, rubric: str, judge: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    body = orjson.dumps({"rubric": rubric, "judge": judge, "items": items})
    wall, response = await timed_post(api, "/v1/rewards", body, 180)
    answer = response.json()
    usage = answer["usage"]
    return {
        "wall_s": wall,
        "calls": usage["calls"],
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "rewarded": usage["rewarded"],
        "failed": usage["failed"],
        "zero_variance_fraction": answer["zero_variance_fraction"],
        "groups": len(answer["groups"]),
    }


def judges_yaml(path: Path, judge_url: str, concurrency: int, openrlhf_concurrency: int) -> None:
    base = {"backend": "openai", "model": "bench-judge", "base_url": judge_url, "timeout_s": 60, "max_retries": 2}
    judges = [
        {"name": "bench-openrlhf", **base, "concurrency": openrlhf_concurrency},
        {"name": "bench", **base, "concurrency": concurrency},
        {"name": "bench-lp", **base, "concurrency": concurrency, "logprobs": True, "top_logprobs": 5},
        {"name": "bench-group", **base, "concurrency": concurrency, "mode": "group", "max_tokens": 8192},
    ]
    path.write_text(yaml.safe_dump({"judges": judges}), encoding="utf-8")


async def run(api: str, args: argparse.Namespace) -> dict[str, Any]:
    latency_s = args.latency_ms / 1000
    run_id = f"r{int(time.time())}"
    # Warm the API's code paths and its pool to the judge (with other texts, so nothing below is cached).
    await one_batch(api, args.rubric, "bench", grpo_batch(f"{run_id}warm", 8, 8))

    openrlhf = await openrlhf_load(api, args.rubric, args.rollouts, args.clients, run_id)
    # Each client waits for its request; a request's calls run together, C of them at a time over all clients.
    waves = max(math.ceil(args.rollouts / args.clients), math.ceil(openrlhf["calls"] / args.openrlhf_concurrency))
    openrlhf["ideal_s"] = waves * latency_s
    openrlhf["efficiency"] = openrlhf["ideal_s"] / openrlhf["wall_s"]

    items = grpo_batch(run_id, args.prompts, args.g)
    n = len(items)
    joint = await one_batch(api, args.rubric, "bench", items)
    continuous = await one_batch(api, args.rubric, "bench-lp", items)
    group = await one_batch(api, args.rubric, "bench-group", items)
    # The calls each batch made, C at a time, each taking L.
    for batch in (joint, continuous, group):
        batch["ideal_s"] = math.ceil(batch["calls"] / args.concurrency) * latency_s
    return {"openrlhf": openrlhf, "joint": joint, "logprobs": continuous, "group": group, "items": n}


def expected_calls(args: argparse.Namespace) -> dict[str, Any]:
    """What the rubric says the run should call: per sample (joint), per display order and per group (group mode)."""
    from judge.backends.openai.group_prompts import group_orders
    from judge.profiles import JudgeProfile

    ref, per_sample = prompt_call_count(args.rubric, "joint")
    _, per_order = prompt_call_count(args.rubric, "group")
    # The bench-group profile leaves permutations at its default; a group has fewer orders than that only when
    # it has fewer distinct ones (group_orders decides, as the scorer does).
    permutations = JudgeProfile.model_fields["permutations"].default
    orders = len(group_orders([f"h{k}" for k in range(args.g)], permutations))
    return {
        "rubric": ref,
        "per_sample": per_sample,
        "per_order": per_order,
        "orders": orders,
        "per_group": per_order * orders,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rollouts", type=int, default=1024)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--openrlhf-concurrency", type=int, default=256, help="judge concurrency, scenario 1")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--g", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=64, help="judge concurrency, scenarios 2 and 3")
    parser.add_argument("--tie-rate", type=float, default=0.9)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--judge-workers", type=int, default=1)
    parser.add_argument("--rubric", default="prmed", help="prmed@1 for one call per sample, as older tables")
    args = parser.parse_args()
    expect = expected_calls(args)

    judge_port, api_port = free_port(), free_port()
    prefix = scratch_prefix("rewards")
    # The stub's realism options are for the zero-variance measurement; they do not change its timing.
    stub_args = [
        sys.executable, "-m", "tests.support.openai_server", "--port", str(judge_port),
        "--latency-ms", str(args.latency_ms), "--workers", str(args.judge_workers),
        "--tie-rate", str(args.tie_rate), "--vary-confidence",
    ]  # fmt: skip
    stub = process(stub_args, ready_url=f"http://127.0.0.1:{judge_port}/v1/models")
    with tempfile.TemporaryDirectory() as tmp, scratch_database() as db_url, stub:
        judges = Path(tmp) / "judges.yaml"
        judges_yaml(judges, f"http://127.0.0.1:{judge_port}/v1", args.concurrency, args.openrlhf_concurrency)
        env = {
            "RJ_DATABASE_URL": db_url, "RJ_REDIS_URL": REDIS_URL, "RJ_REDIS_PREFIX": prefix,
            "RJ_JUDGES_FILE": str(judges), "RJ_LOG_LEVEL": "WARNING", "RJ_REWARD_JUDGE": "bench-openrlhf",
        }  # fmt: skip
        api_args = [sys.executable, "-m", "judge", "serve", "--port", str(api_port), "--workers", str(args.api_workers)]
        with process(api_args, env=env, ready_url=f"http://127.0.0.1:{api_port}/healthz"):
            m = asyncio.run(run(f"http://127.0.0.1:{api_port}", args))
    load = os.getloadavg()
    o, j, lp, g = m["openrlhf"], m["joint"], m["logprobs"], m["group"]
    per_sample, per_group = expect["per_sample"], expect["per_group"]
    want_joint, want_group = m["items"] * per_sample, args.prompts * per_group
    title = (
        f"1. OpenRLHF-style /get_reward: {expect['rubric']}, N={args.rollouts} rollouts, one per POST, "
        f"{args.clients} clients, L={args.latency_ms:.0f} ms, judge concurrency {args.openrlhf_concurrency}"
    )
    print_table(title, [
        ("wall time (s)", f"{o['wall_s']:.3f}", "", None),
        ("judge calls (/metrics)", f"{o['calls']:,}", f"{args.rollouts * per_sample:,}",
         o["calls"] == args.rollouts * per_sample),
        ("ideal max(ceil(N/clients), ceil(calls/C))·L (s)", f"{o['ideal_s']:.3f}", "", None),
        ("throughput (rollouts/s)", f"{o['throughput_per_s']:,.0f}", "", None),
        ("p50 latency (ms)", f"{o['p50_ms']:.0f}", "", None),
        ("p99 latency (ms)", f"{o['p99_ms']:.0f}", "", None),
        ("efficiency ideal/wall", f"{o['efficiency']:.3f}", ">= 0.90", o["efficiency"] >= 0.90),
        ("failed requests", o["failed_requests"], "0", o["failed_requests"] == 0),
        ("retried requests", o["retried_requests"], "", None),
        ("items with judge_failed", o["judge_failed_items"], "0", o["judge_failed_items"] == 0),
    ])  # fmt: skip
    waves = math.ceil(j["calls"] / args.concurrency)
    print_table(
        f"2. TRL-style /v1/rewards: {expect['rubric']}, {args.prompts} prompts × {args.g} completions, "
        f"C={args.concurrency} ({j['calls']} calls: {waves} waves of L)",
        [
            ("wall time (s)", f"{j['wall_s']:.3f}", f"<= {1.1 * j['ideal_s']:.3f}", j["wall_s"] <= 1.1 * j["ideal_s"]),
            ("judge calls (usage.calls)", f"{j['calls']:,}", f"{want_joint:,} ({per_sample} per item)",
             j["calls"] == want_joint),
            ("ideal ceil(calls/C)·L (s)", f"{j['ideal_s']:.3f}", "", None),
            ("wall / ideal", f"{j['wall_s'] / j['ideal_s']:.2f}", "<= 1.10", j["wall_s"] <= 1.1 * j["ideal_s"]),
            ("rewarded items", f"{j['rewarded']}/{m['items']}", "all", j["rewarded"] == m["items"]),
            ("zero-variance groups, integer scores", f"{j['zero_variance_fraction']:.3f}", "", None),
            ("zero-variance groups, logprobs (expected)", f"{lp['zero_variance_fraction']:.3f}", "", None),
            ("wall with logprobs (s)", f"{lp['wall_s']:.3f}", "", None),
            ("judge calls with logprobs", f"{lp['calls']:,}", f"{want_joint:,}", lp["calls"] == want_joint),
        ],
    )  # fmt: skip
    print_table(
        f"3. group mode vs joint mode, same {args.prompts} × {args.g} batch, C={args.concurrency}",
        [
            ("judge calls: joint / group", f"{j['calls']} / {g['calls']}", f"{want_joint} / {want_group}",
             (j["calls"], g["calls"]) == (want_joint, want_group)),
            ("group calls per group", f"{g['calls'] / args.prompts:.2f}",
             f"{per_group} ({expect['orders']} orders × {expect['per_order']})", g["calls"] == want_group),
            ("prompt tokens: joint / group", f"{j['prompt_tokens']:,} / {g['prompt_tokens']:,}", "", None),
            ("completion tokens: joint / group", f"{j['completion_tokens']:,} / {g['completion_tokens']:,}", "", None),
            ("wall (s): joint / group", f"{j['wall_s']:.3f} / {g['wall_s']:.3f}", "", None),
            ("group ideal ceil(calls/C)·L (s)", f"{g['ideal_s']:.3f}", "", None),
            ("rewarded items: group", f"{g['rewarded']}/{m['items']}", "all", g["rewarded"] == m["items"]),
            ("zero-variance groups: group mode", f"{g['zero_variance_fraction']:.3f}", "", None),
        ],
    )  # fmt: skip
    console.print(
        f"load average at the end (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores: {os.cpu_count()}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args), "expected_calls": expect, "loadavg": load, **m}
    (RESULTS / "rewards.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
