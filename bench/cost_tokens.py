"""Cost sections 1 and 2: the shared-prefix share of prompt tokens (protocol-1 layout vs this one) and prompt +
completion tokens per verdict for each mode and rationale, through the OpenAI judge."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.cost_samples import make_samples
from judge.backends.openai.judge import OpenAIJudge
from judge.backends.openai.prompts import render_prompt
from judge.profiles import JudgeProfile
from rubrics.schema import Rubric
from tests.support.openai_server import PrefixCache


def baseline_prompts(commit: str) -> types.ModuleType:
    """The prompt modules as they were at ``commit`` (protocol 1), loaded from git without touching the tree."""
    folder = Path(tempfile.mkdtemp(prefix="rj-baseline-prompts-"))
    for name in ("prompt_text", "prompts"):
        source = subprocess.run(
            ["git", "show", f"{commit}:judge/backends/openai/{name}.py"], cwd=ROOT, check=True, capture_output=True
        ).stdout.decode()
        source = source.replace("from judge.backends.openai.prompt_text import", "from rj_baseline_prompt_text import")
        (folder / f"rj_baseline_{name}.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(folder))
    return importlib.import_module("rj_baseline_prompts")


def prefix_share(
    prompts: list[tuple[str, str]], count: Callable[[str], int] = lambda text: len(text) // 2
) -> tuple[float, float]:
    """(shared share of prompt tokens over all but the first prompt, mean prompt tokens), as the loopback counts
    (``count``: characters / 2, or a real tokenizer's count)."""
    cache = PrefixCache()
    shared = total = 0
    sizes = []
    for i, (system, user) in enumerate(prompts):
        text = f"<|system|>{system}<|user|>{user}"
        tokens = count(f"{system}\n{user}")
        seen = cache.seen_chars(text)
        hit = min(tokens, count(text[:seen]) if seen else 0)
        sizes.append(tokens)
        if i:
            shared += hit
            total += tokens
    return shared / total, sum(sizes) / len(sizes)


def measure_layouts(rubric: Rubric, n: int, commit: str, count: Callable[[str], int] | None = None) -> dict[str, Any]:
    samples = make_samples(n, "layout")
    old = baseline_prompts(commit)
    old_prompts = [old.render_prompt(s, rubric, language="zh") for s in samples]
    new_prompts = [render_prompt(s, rubric, language="zh") for s in samples]
    kwargs = {"count": count} if count is not None else {}
    old_share, old_size = prefix_share([(p.system, p.user) for p in old_prompts], **kwargs)
    new_share, new_size = prefix_share([(p.system, p.user) for p in new_prompts], **kwargs)
    return {"old_share": old_share, "old_tokens": old_size, "new_share": new_share, "new_tokens": new_size}


async def tokens_per_verdict(rubric: Rubric, judge_url: str, n: int) -> list[dict[str, Any]]:
    rows = []
    for mode in ("joint", "layered", "isolated"):
        for rationale in ("full", "brief", "none"):
            profile = JudgeProfile.model_validate(
                {
                    "name": f"cost-{mode}-{rationale}",
                    "model": "stub",
                    "base_url": judge_url,
                    "mode": mode,
                    "rationale": rationale,
                    "concurrency": 64,
                    "timeout_s": 30,
                    "max_tokens": 4096,
                }
            )
            judge = OpenAIJudge(profile)
            try:
                samples = make_samples(n + 1, f"{mode}-{rationale}-")
                # One sample first, not counted: it fills the provider's cache, as the first call of a run does.
                await judge.score(samples[0], rubric)
                outcomes = await asyncio.gather(*(judge.score(s, rubric) for s in samples[1:]))
            finally:
                await judge.aclose()
            ok = sum(o.complete for o in outcomes)
            calls = sum(o.usage.calls for o in outcomes)
            prompt = sum(o.usage.prompt_tokens for o in outcomes)
            cached = sum(o.usage.cached_tokens for o in outcomes)
            completion = sum(o.usage.completion_tokens for o in outcomes)
            rows.append(
                {
                    "mode": mode,
                    "rationale": rationale,
                    "ok": ok,
                    "n": n,
                    "calls": calls / n,
                    "prompt": prompt / n,
                    "cached": cached / n,
                    "uncached": (prompt - cached) / n,
                    "completion": completion / n,
                }
            )
    return rows
