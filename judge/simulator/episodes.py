"""Offline episodes: policy -> simulator -> policy …, every policy turn judged in context under one rubric.

``rubric-judge simulate`` runs one episode per case line and writes one JSONL line per episode: the dialogue,
the per-turn verdicts and an episode summary (per-turn rewards, mean, min, last, discounted, and the episode
reward under the chosen policy). Runs resume from their own output (:mod:`judge.resume`). A case line that is
not a valid case goes to the errors file for good; an episode whose simulator or policy fails is reported and
left out, so a rerun tries it again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from pydantic import ValidationError

from judge.errors import RubricJudgeError
from judge.profiles import ChatProfile, JudgeProfile
from judge.resume import done_lines
from judge.samples import Message, SampleIn, normalise, split_completion
from judge.service import ScoreOptions, score_samples
from judge.simulator.episode_rewards import REWARD_POLICIES, RewardPolicy, episode_reward
from judge.simulator.schemas import PatientCase
from judge.simulator.service import SimulatorService
from rubrics.schema import Rubric


def summarise(
    rewards: Sequence[float | None], passed: Sequence[bool | None], policy: RewardPolicy, gamma: float
) -> dict[str, Any]:
    """The episode summary: every aggregate, and the one the chosen policy uses as the episode reward."""
    return {
        "turn_rewards": list(rewards),
        "turn_passed": list(passed),
        "unscored_turns": [i + 1 for i, r in enumerate(rewards) if r is None],
        **{name: episode_reward(rewards, name, gamma) for name in REWARD_POLICIES},
        "gamma": gamma,
        "policy": policy,
        "episode_reward": episode_reward(rewards, policy, gamma),
        "all_passed": None if any(p is None for p in passed) or not passed else all(p for p in passed),
    }


@dataclass(frozen=True)
class EpisodeConfig:
    policy: ChatProfile
    simulator: ChatProfile
    rubric: Rubric
    judge: JudgeProfile
    turns: int = 3
    reward_policy: RewardPolicy = "mean"
    gamma: float = 0.9
    seed: int | None = None
    cache: bool = True
    rationale: bool = True


@dataclass
class EpisodeStats:
    skipped: int = 0
    episodes: int = 0
    invalid: int = 0
    failed: int = 0
    turns: int = 0
    rewards: list[float] = field(default_factory=list)
    end_reasons: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def run_episode(service: SimulatorService, case: PatientCase, config: EpisodeConfig) -> dict[str, Any]:
    """One episode: the opening (the case's, else the simulator's), then up to ``config.turns`` policy turns."""
    usage = {"policy_calls": 0, "simulator_calls": 0, "judge_calls": 0, "cached_turns": 0}
    max_turns = min(config.turns, case.max_turns) if case.max_turns else config.turns
    dialogue: list[Message] = []
    if case.opening is not None:
        dialogue.append(Message(role="user", content=case.opening))
    else:
        opening = await service.next_turn(config.simulator, case, [], seed=config.seed, use_cache=config.cache)
        usage["simulator_calls"] += opening.calls
        dialogue.append(Message(role="user", content=opening.utterance or ""))
    turns: list[dict[str, Any]] = []
    end_reason = "max_turns"
    options = ScoreOptions(cache=config.cache, rationale=config.rationale)
    while True:
        answer = await service.generate(config.policy, dialogue, seed=config.seed)
        usage["policy_calls"] += 1
        completion = answer.content
        sample = normalise(SampleIn(messages=list(dialogue), completion=completion, reference=case.reference))
        body = await score_samples(service.runtime, config.rubric, config.judge, [sample], options)
        usage["judge_calls"] += body["usage"]["calls"]
        verdict = body["results"][0]
        turns.append({"turn": len(turns) + 1, "completion": completion, "verdict": verdict})
        # What the patient heard: the reply without the chain of thought.
        dialogue.append(Message(role="assistant", content=split_completion(completion)[1].strip()))
        nxt = await service.next_turn(
            config.simulator, case, dialogue, seed=config.seed, max_turns=max_turns, use_cache=config.cache
        )
        usage["simulator_calls"] += nxt.calls
        usage["cached_turns"] += int(nxt.cached)
        if nxt.utterance is not None:
            dialogue.append(Message(role="user", content=nxt.utterance))
        if nxt.done:
            end_reason = nxt.reason
            break
    rewards = [t["verdict"]["reward"] for t in turns]
    passed = [t["verdict"]["passed"] for t in turns]
    return {
        "case_id": case.id,
        "intensity": case.perturbation.intensity,
        "dialogue": [m.model_dump() for m in dialogue],
        "turns": turns,
        "end_reason": end_reason,
        "summary": summarise(rewards, passed, config.reward_policy, config.gamma),
        "usage": usage,
    }


def read_cases(path: Path, skip: Any) -> Iterator[tuple[int, PatientCase | None, str | None]]:
    """(line number, case or None, error or None) for each non-blank line not in ``skip``."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number in skip or not raw.strip():
                continue
            try:
                yield number, PatientCase.model_validate_json(raw), None
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())) or "line"
                yield number, None, f"{where}: {first.get('msg')}"


def _write(fh: IO[bytes], obj: dict[str, Any]) -> None:
    fh.write(orjson.dumps(obj) + b"\n")
    fh.flush()
    os.fsync(fh.fileno())


class CaseFileStats(Protocol):
    """The counters every case-file run keeps (its own stats add the rest)."""

    skipped: int
    invalid: int
    failed: int
    errors: list[str]


async def process_case_file(
    source: Path,
    out: Path,
    errors: Path,
    stats: CaseFileStats,
    work: Callable[[PatientCase], Awaitable[dict[str, Any]]],
    on_record: Callable[[dict[str, Any]], None],
    *,
    concurrency: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Run ``work`` on each case line of ``source`` not yet in ``out``/``errors`` and write one line per case.

    Shared by episodes and the perturbation gradient: a record goes to ``out`` (``on_record`` counts it), an
    invalid case line to ``errors`` for good, and a case whose ``work`` raises a domain error is only reported,
    so that a rerun tries it again.
    """
    skip = done_lines([out, errors])
    stats.skipped = skip.count
    out.parent.mkdir(parents=True, exist_ok=True)
    slots = asyncio.Semaphore(concurrency)
    with out.open("ab") as out_fh, errors.open("ab") as err_fh:

        async def one(number: int, case: PatientCase) -> None:
            async with slots:
                try:
                    record = await work(case)
                except RubricJudgeError as exc:
                    stats.failed += 1
                    stats.errors.append(f"line {number}: {exc.message}")
                else:
                    _write(out_fh, {"line": number, **record})
                    on_record(record)
            if on_progress is not None:
                on_progress(1)

        tasks: list[asyncio.Task[None]] = []
        for number, case, error in read_cases(source, skip):
            if case is None:
                _write(err_fh, {"line": number, "error": error})
                stats.invalid += 1
                if on_progress is not None:
                    on_progress(1)
                continue
            tasks.append(asyncio.create_task(one(number, case)))
            # Bounded look-ahead: a million-line file does not become a million tasks.
            if len(tasks) >= concurrency * 4:
                await asyncio.gather(*tasks)
                tasks = []
        await asyncio.gather(*tasks)


async def simulate_file(
    service: SimulatorService,
    source: Path,
    out: Path,
    errors: Path,
    config: EpisodeConfig,
    *,
    concurrency: int = 4,
    on_progress: Callable[[int], None] | None = None,
) -> EpisodeStats:
    """One episode per case line not yet in ``out``/``errors``; lines are written as episodes finish."""
    stats = EpisodeStats()
    errors.parent.mkdir(parents=True, exist_ok=True)

    async def episode_of(case: PatientCase) -> dict[str, Any]:
        return await run_episode(service, case, config)

    def count(episode: dict[str, Any]) -> None:
        stats.episodes += 1
        stats.turns += len(episode["turns"])
        reason = episode["end_reason"]
        stats.end_reasons[reason] = stats.end_reasons.get(reason, 0) + 1
        if episode["summary"]["episode_reward"] is not None:
            stats.rewards.append(episode["summary"]["episode_reward"])

    await process_case_file(
        source, out, errors, stats, episode_of, count, concurrency=concurrency, on_progress=on_progress
    )
    return stats
