"""Scoring as callers ask for it: resolve rubric and judge, check limits, score, render results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from judge.errors import JudgeRubricMismatch, JudgeUnavailable, LimitExceeded
from judge.pricing.prices import cost
from judge.profiles import JudgeProfile, RationaleMode, with_rationale
from judge.results import render_result
from judge.runtime import Runtime
from judge.samples import Sample, SampleIn, normalise
from judge.settings import Settings
from rubrics.schema import Rubric


class ScoreOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The whole call's budget; unfinished items come back with status "timeout".
    deadline_ms: Annotated[int | None, Field(gt=0, le=3_600_000)] = None
    cache: bool = True
    # true/false: show or leave out the rationales the profile asks for. "full" | "brief" | "none": ask the judge
    # for that (a different prompt and output schema, so verdicts are cached apart); "none" is scores only.
    rationale: bool | RationaleMode = True
    # What an item with an unscored axis gets: passed/reward null (default), a fail, or scored axes only.
    on_missing: Literal["null", "fail", "ignore"] = "null"


def check_limits(settings: Settings, samples: Sequence[SampleIn]) -> None:
    """Over a configured limit: a 413 that names the field, before any work is done."""
    if len(samples) > settings.max_samples_per_request:
        raise LimitExceeded(
            f"{len(samples)} samples in one request; the limit is {settings.max_samples_per_request}",
            field="samples",
        )
    limit = settings.max_text_chars
    for i, sample in enumerate(samples):
        for name in ("reasoning", "response", "completion", "reference"):
            text = getattr(sample, name)
            if text is not None and len(text) > limit:
                raise LimitExceeded(f"{len(text)} characters; the limit is {limit}", field=f"samples[{i}].{name}")
        for j, message in enumerate(sample.messages):
            if len(message.content) > limit:
                raise LimitExceeded(
                    f"{len(message.content)} characters; the limit is {limit}",
                    field=f"samples[{i}].messages[{j}].content",
                )


def scores_kind(profile: JudgeProfile, kind: str) -> bool:
    """Whether ``profile``'s backend scores rubrics of ``kind`` (the rules judge scores only ``rules`` rubrics;
    model judges score the ``llm`` ones, and an LLM judge can read a ``rules`` rubric's anchors too)."""
    if profile.backend == "rules":
        return kind == "rules"
    if profile.backend == "reward_model":
        return kind == "llm"
    return True


def default_judge(runtime: Runtime, rubric: Rubric) -> str:
    """The judge for a request that names none: ``RJ_DEFAULT_JUDGE``, else the only judge fit for the rubric's kind
    (``rules`` for rules rubrics); more than one or none: a 422 that says how to pick one."""
    configured = runtime.settings.default_judge
    if configured:
        return configured
    if rubric.kind == "rules":
        return "rules"
    fit = [p.name for p in runtime.profiles.all() if p.backend == "openai" and scores_kind(p, rubric.kind)]
    if len(fit) == 1:
        return fit[0]
    known = f"one of {', '.join(sorted(fit))}" if fit else "a judge from a judges file (RJ_JUDGES_FILE / --judges-file)"
    raise JudgeRubricMismatch(
        f"no judge given for rubric {rubric.ref!r} (kind {rubric.kind!r}): name {known}, or set RJ_DEFAULT_JUDGE",
        field="judge",
    )


def resolve(runtime: Runtime, rubric_ref: str, judge: str | None) -> tuple[Rubric, JudgeProfile]:
    """The rubric and judge a request names (the judge defaults by the rubric's kind); a judge that cannot score
    the rubric's kind is a 422 naming ``judge``, before any sample is judged."""
    rubric = runtime.rubrics.resolve(rubric_ref)
    profile = runtime.profiles.get(judge or default_judge(runtime, rubric))
    if not scores_kind(profile, rubric.kind):
        hint = "a rules rubric such as prmed-format" if profile.backend == "rules" else "an LLM judge"
        raise JudgeRubricMismatch(
            f"judge {profile.name!r} ({profile.backend}) cannot score rubric {rubric.ref!r} of kind "
            f"{rubric.kind!r}: use {hint}",
            field="judge",
        )
    # Fail fast (503, field "judge") when the backend cannot be built, e.g. its API key is unset.
    try:
        runtime.scorer.backend(profile)
    except JudgeUnavailable as exc:
        raise JudgeUnavailable(f"judge {profile.name!r} is unavailable: {exc.message}", field="judge") from exc
    return rubric, profile


async def score_samples(
    runtime: Runtime,
    rubric: Rubric,
    profile: JudgeProfile,
    samples: Sequence[Sample],
    options: ScoreOptions,
) -> dict[str, Any]:
    """Score normalised samples and render the response body (results in input order + usage)."""
    deadline = options.deadline_ms / 1000 if options.deadline_ms is not None else runtime.settings.default_deadline_s
    rationale = options.rationale
    if isinstance(rationale, str):
        profile = with_rationale(profile, rationale)
    include_rationale = rationale not in (False, "none")
    batch = await runtime.scorer.score(rubric, profile, samples, deadline_s=deadline, use_cache=options.cache)
    results = [
        render_result(item, rubric, include_rationale=include_rationale, on_missing=options.on_missing)
        for item in batch.items
    ]
    timed_out = sum(1 for item in batch.items if item.timed_out)
    return {
        "rubric": rubric.ref,
        "rubric_hash": rubric.content_hash,
        "judge": profile.name,
        "results": results,
        "usage": {
            "samples": len(samples),
            "cached": batch.cached,
            "judged": len(samples) - batch.cached - timed_out,
            "timed_out": timed_out,
            "pending_writes": batch.pending_writes,
            **batch.usage.model_dump(),
            # At the profile's prices, for the calls this request made (cached verdicts cost nothing now).
            "cost": cost(profile.prices, batch.usage),
        },
    }


def normalise_all(samples: Sequence[SampleIn]) -> list[Sample]:
    return [normalise(s) for s in samples]
