"""The perturbation gradient, collected: each case's first message at each level, the policy's answer, a verdict.

One JSONL line per case (``rows.jsonl`` in the output folder), with a record per level; a rerun resumes from
it. The statistics and the report files are in :mod:`judge.simulator.gradient_report`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from judge.profiles import ChatProfile, JudgeProfile
from judge.samples import Message, SampleIn, normalise
from judge.service import ScoreOptions, score_samples
from judge.simulator.episodes import process_case_file
from judge.simulator.schemas import Intensity, PatientCase
from judge.simulator.service import SimulatorService
from rubrics.schema import Rubric


@dataclass(frozen=True)
class GradientConfig:
    policy: ChatProfile
    perturber: ChatProfile
    rubric: Rubric
    judge: JudgeProfile
    levels: Sequence[Intensity] = ("formal", "mild", "moderate", "heavy")
    seed: int | None = None
    cache: bool = True


@dataclass
class GradientStats:
    skipped: int = 0
    cases: int = 0
    invalid: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def gradient_case(service: SimulatorService, case: PatientCase, config: GradientConfig) -> dict[str, Any]:
    """One case at every level: perturbed first message, the policy's answer, its verdict (levels in parallel)."""
    original = case.opening or case.chief_complaint
    options = ScoreOptions(cache=config.cache, rationale=False)

    async def level(name: Intensity) -> dict[str, Any]:
        rewrite = await service.perturb(
            config.perturber, original, name, list(case.perturbation.types), case.language,
            seed=config.seed, use_cache=config.cache,
        )  # fmt: skip
        messages = [Message(role="user", content=rewrite.text)]
        answer = await service.generate(config.policy, messages, seed=config.seed)
        sample = normalise(SampleIn(messages=messages, completion=answer.content, reference=case.reference))
        body = await score_samples(service.runtime, config.rubric, config.judge, [sample], options)
        verdict = body["results"][0]
        return {
            "text": rewrite.text,
            "types": rewrite.types,
            "completion": answer.content,
            "reward": verdict["reward"],
            "passed": verdict["passed"],
            "scores": {key: axis["score"] for key, axis in verdict["axes"].items()},
            "error": verdict["error"],
            "verdict_id": verdict["verdict_id"],
        }

    results = await asyncio.gather(*(level(name) for name in config.levels))
    return {"case_id": case.id, "original": original, "levels": dict(zip(config.levels, results, strict=True))}


async def collect_gradient(
    service: SimulatorService,
    source: Path,
    rows: Path,
    errors: Path,
    config: GradientConfig,
    *,
    concurrency: int = 4,
    on_progress: Callable[[int], None] | None = None,
) -> GradientStats:
    """A line in ``rows`` per case of ``source`` not yet there; failed cases are reported and retried next run."""
    stats = GradientStats()

    async def gradient_of(case: PatientCase) -> dict[str, Any]:
        return await gradient_case(service, case, config)

    def count(_: dict[str, Any]) -> None:
        stats.cases += 1

    await process_case_file(
        source, rows, errors, stats, gradient_of, count, concurrency=concurrency, on_progress=on_progress
    )
    return stats


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The collected cases (the last record of a line wins, should a line appear twice)."""
    by_line: dict[int, dict[str, Any]] = {}
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                record = orjson.loads(raw)
                by_line[int(record["line"])] = record
    return [by_line[n] for n in sorted(by_line)]
