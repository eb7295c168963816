"""Issue 12 benchmark: episodes per second through the offline simulate-evaluate loop.

Setup: the loopback OpenAI-protocol server (separate process) answers every call after L = 50 ms and plays the
policy, the patient simulator and the judge. ``judge.simulator.episodes.simulate_file`` runs N Chinese cases of
T policy turns each (the case gives the opening, so an episode is T policy calls, T judge calls and T - 1
simulator calls: 3T - 1 calls in sequence) with C episodes at once, on an embedded SQLite store and the
in-process cache. Ideal: C / ((3T - 1) · L) episodes per second. A second run over the same cases into a fresh
output shows the cache: simulator turns and verdicts are reused, only the policy is called again.

    python bench/bench_simulate.py [--cases 64] [--turns 3] [--latency-ms 50] [--concurrency 1,16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PATIENTS, console, free_port, stub_judge  # noqa: E402


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
    tmp: Path, url: str, cases: int, turns: int, concurrency: int, latency_s: float
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
    ideal_calls = 3 * turns - 1
    ideal_rate = concurrency / (ideal_calls * latency_s)
    async with await Runtime.open(settings) as runtime:
        service = SimulatorService(runtime)
        try:
            config = EpisodeConfig(
                policy=service.profiles.policy("policy"), simulator=service.profiles.simulator("patient"),
                rubric=runtime.rubrics.resolve("prmed"), judge=runtime.profiles.get("stub"), turns=turns, seed=1,
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
                calls = sum(
                    sum(e["usage"][k] for k in ("policy_calls", "simulator_calls", "judge_calls")) for e in episodes
                )
                per_episode = calls / len(episodes)
                rate = stats.episodes / wall
                if label == "cold":
                    rows.append(
                        (
                            f"C={concurrency} cold: episodes/s",
                            f"{rate:.2f}",
                            f"ideal {ideal_rate:.2f}",
                            f"{rate / ideal_rate:.0%} of ideal",
                        )
                    )
                    rows.append(
                        (f"C={concurrency} cold: calls/episode", f"{per_episode:.2f}", f"ideal {ideal_calls}", None)
                    )
                else:
                    cached_ideal = concurrency / (turns * latency_s)
                    rows.append(
                        (
                            f"C={concurrency} re-run: episodes/s",
                            f"{rate:.2f}",
                            f"ideal {cached_ideal:.2f} (policy only)",
                            f"{rate / cached_ideal:.0%} of ideal",
                        )
                    )
                    rows.append(
                        (f"C={concurrency} re-run: calls/episode", f"{per_episode:.2f}", f"ideal {turns}", None)
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
    args = parser.parse_args()
    port = free_port()
    rows: list[tuple[str, Any, Any, Any]] = []
    with stub_judge(port, args.latency_ms), tempfile.TemporaryDirectory() as tmp:
        for c in (int(x) for x in args.concurrency.split(",")):
            rows += asyncio.run(
                run(Path(tmp), f"http://127.0.0.1:{port}/v1", args.cases, args.turns, c, args.latency_ms / 1000)
            )
    from rich.table import Table

    table = Table(title=f"simulate: {args.cases} cases × {args.turns} turns, stub latency {args.latency_ms:.0f} ms")
    for column in ("measure", "value", "ideal", "ratio"):
        table.add_column(column)
    for measure, value, ideal, ratio in rows:
        table.add_row(measure, str(value), str(ideal), "" if ratio is None else str(ratio))
    console.print(table)


if __name__ == "__main__":
    main()
