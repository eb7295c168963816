"""Issue 12 benchmark: episodes per second through the offline simulate-evaluate loop.

Setup: the loopback OpenAI-protocol server (separate process) answers every call after L = 50 ms and plays the
policy, the patient simulator and the judge. ``judge.simulator.episodes.simulate_file`` runs N Chinese cases of
T policy turns each with C episodes at once, on an embedded SQLite store and the in-process cache. The case gives
the opening, so an episode is T policy calls, T - 1 simulator calls and T judgements of k calls each, k being the
rubric's calls per sample (``prompt_calls``: 2 under prmed@2, whose response-layer axes are judged without the
CoT; 1 under prmed@1): T(2 + k) - 1 calls. A judgement's k calls run together, so an episode is 3T - 1 steps of L
in sequence; the ideal rate is C / (steps · L), the steps counted from the calls the run made (policy + simulator
calls + judge calls / k). A second run over the same cases into a fresh output shows the cache: simulator turns
and verdicts are reused, only the policy is called again.

    python bench/bench_simulate.py [--cases 64] [--turns 3] [--latency-ms 50] [--concurrency 1,16,64]
                                   [--rubric prmed]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PATIENTS, console, free_port, prompt_call_count, stub_judge  # noqa: E402


def write_cases(path: Path, n: int, tag: str) -> None:
    with path.open("wb") as fh:
        for i in range(n):
            case = {
                "id": f"{tag}-{i}",
                "persona": {"age": 30 + i % 50, "sex": "female" if i % 2 else "male"},
                "chief_complaint": f"{PATIENTS[i % len(PATIENTS)]}（{tag}第{i}号）",
                "hidden_facts": [{"topic": "用药", "fact": "在吃降压药"}],
                "emotional_state": "焦虑",
                "perturbation": {"types": ["colloquial", "emotional"], "intensity": "moderate"},
                "opening": f"{PATIENTS[i % len(PATIENTS)]}（{tag}第{i}号）",
                "max_turns": 50,
            }
            fh.write(orjson.dumps(case) + b"\n")


async def run(
    tmp: Path, url: str, rubric: str, cases: int, turns: int, concurrency: int, latency_s: float
) -> list[tuple[str, Any, Any, Any]]:
    from judge.runtime import Runtime
    from judge.settings import Settings
    from judge.simulator.episodes import EpisodeConfig, simulate_file
    from judge.simulator.service import SimulatorService
    from judge.store.migrate import upgrade

    db = tmp / f"rj-{concurrency}.db"
    await upgrade(f"sqlite+aiosqlite:///{db}")
    base = {"base_url": url, "concurrency": 256, "timeout_s": 30, "max_retries": 1}
    judges = tmp / "judges.yaml"
    judges.write_text(
        yaml.safe_dump({
            "judges": [{"name": "stub", "backend": "openai", "model": "judge", **base}],
            "simulators": [{"name": "patient", "model": "sim", **base}],
            "policies": [{"name": "policy", "model": "policy", **base}],
        }),
        encoding="utf-8",
    )  # fmt: skip
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", judges_file=judges, _env_file=None)  # type: ignore[call-arg]
    source = tmp / f"cases-{concurrency}.jsonl"
    write_cases(source, cases, f"c{concurrency}")
    rows: list[tuple[str, Any, Any, Any]] = []
    # The stub judge is a joint-mode profile: k calls per judged turn, all at once.
    _, k = prompt_call_count(rubric, "joint")
    ideal_calls = turns * (2 + k) - 1
    async with await Runtime.open(settings) as runtime:
        service = SimulatorService(runtime)
        try:
            config = EpisodeConfig(
                policy=service.profiles.policy("policy"), simulator=service.profiles.simulator("patient"),
                rubric=runtime.rubrics.resolve(rubric), judge=runtime.profiles.get("stub"), turns=turns, seed=1,
                rationale=False,
            )  # fmt: skip
            for label in ("cold", "cached"):
                out = tmp / f"episodes-{concurrency}-{label}.jsonl"
                started = time.perf_counter()
                stats = await simulate_file(
                    service, source, out, tmp / f"errors-{label}.jsonl", config, concurrency=concurrency
                )
                wall = time.perf_counter() - started
                episodes = [orjson.loads(line) for line in out.read_bytes().splitlines()]
                kinds = ("policy_calls", "simulator_calls", "judge_calls")
                made = {kind: sum(e["usage"][kind] for e in episodes) for kind in kinds}
                per_episode = sum(made.values()) / len(episodes)
                # Steps in sequence: every policy and simulator call, and one per judgement (its k calls together).
                steps = (made["policy_calls"] + made["simulator_calls"] + made["judge_calls"] / k) / len(episodes)
                ideal_rate = concurrency / (steps * latency_s)
                rate = stats.episodes / wall
                if label == "cold":
                    rows.append(
                        (
                            f"C={concurrency} cold: episodes/s",
                            f"{rate:.2f}",
                            f"ideal {ideal_rate:.2f} ({steps:.2f} steps)",
                            f"{rate / ideal_rate:.0%} of ideal",
                        )
                    )
                    rows.append(
                        (
                            f"C={concurrency} cold: calls/episode",
                            f"{per_episode:.2f}",
                            f"ideal {ideal_calls} ({turns} policy, {turns - 1} simulator, {turns}×{k} judge)",
                            f"{per_episode / ideal_calls:.0%} of ideal",
                        )
                    )
                else:
                    rows.append(
                        (
                            f"C={concurrency} re-run: episodes/s",
                            f"{rate:.2f}",
                            f"ideal {ideal_rate:.2f} ({steps:.2f} steps)",
                            f"{rate / ideal_rate:.0%} of ideal",
                        )
                    )
                    rows.append(
                        (
                            f"C={concurrency} re-run: calls/episode",
                            f"{per_episode:.2f}",
                            f"ideal {turns} (policy only)",
                            f"{per_episode / turns:.0%} of ideal",
                        )
                    )
        finally:
            await service.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--rubric", default="prmed", help="prmed@1 for one judge call per turn, as older tables")
    args = parser.parse_args()
    rubric_ref, _ = prompt_call_count(args.rubric, "joint")
    port = free_port()
    rows: list[tuple[str, Any, Any, Any]] = []
    with stub_judge(port, args.latency_ms), tempfile.TemporaryDirectory() as tmp:
        for c in (int(x) for x in args.concurrency.split(",")):
            rows += asyncio.run(
                run(Path(tmp), f"http://127.0.0.1:{port}/v1", args.rubric, args.cases, args.turns, c,
                    args.latency_ms / 1000)
            )  # fmt: skip
    from rich.table import Table

    table = Table(
        title=f"simulate: {rubric_ref}, {args.cases} cases × {args.turns} turns, stub latency {args.latency_ms:.0f} ms"
    )
    for column in ("measure", "value", "ideal", "ratio"):
        table.add_column(column)
    for measure, value, ideal, ratio in rows:
        table.add_row(measure, str(value), str(ideal), "" if ratio is None else str(ratio))
    console.print(table)
    load = os.getloadavg()
    console.print(f"load average at the end (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
