"""Rewards for a batch of rollouts: validate items, score them through the Scorer, apply the failure policy.

A failed item (invalid input, judge failure, deadline) never gets an invented reward: it gets what the
request's ``on_failure`` policy says (null, the rubric's floor, or left out), and its status says why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from judge.errors import LimitExceeded
from judge.integrity.facts import level_distributions, output_facts
from judge.pricing.prices import cost
from judge.profiles import JudgeProfile, with_rationale
from judge.rewards.schemas import OnFailure, RewardItemIn, RewardRequestError, RewardsRequest
from judge.rewards.stats import GroupStats, group_stats, zero_variance_fraction
from judge.runtime import Runtime
from judge.samples import Sample, normalise
from judge.scoring.batch import ScoreBatch, ScoredItem
from judge.service import resolve
from judge.settings import Settings
from judge.verdicts import AxisStatus, Usage
from rubrics.aggregation import aggregate
from rubrics.schema import Rubric

# Item statuses besides the axis statuses (ok, parse_error, judge_error, timeout, truncated).
INVALID = "invalid"
# An item whose reward would mix expected and integer scores, refused under ``require_expected``.
NO_LOGPROBS = "no_logprobs"
# Machine-readable reasons of invalid items that integrity guards refuse (judge.integrity).
INTEGRITY_REASONS = frozenset({"turn_markers", "conversation"})
# Which failure names an item with several failed axes: the one most likely to explain the others.
_STATUS_ORDER = (AxisStatus.timeout, AxisStatus.judge_error, AxisStatus.truncated, AxisStatus.parse_error)
DEADLINE_ERROR = "deadline exceeded; the judge call goes on and its verdict will be cached"


@dataclass(slots=True)
class PreparedItem:
    """An input item after validation: a normalised sample, or the reason there is none."""

    index: int
    id: str | None
    # None for an invalid item that names no group: it stays out of the group statistics.
    group_id: str | None
    sample: Sample | None
    error: str | None = None
    # Why an invalid item is invalid, in one word: "turn_markers", "conversation", or "input".
    reason: str | None = None


@dataclass(slots=True)
class RewardOutcome:
    """One item's reward and what it rests on; the same keys for every item of a rubric."""

    index: int
    id: str | None
    group_id: str | None
    reward: float | None
    passed: bool | None
    # Per axis, the value the reward used: the expected score with logprobs, else the integer; None if unscored.
    scores: dict[str, float | None]
    layers: dict[str, float | None]
    status: str
    cache_hit: bool
    # The CoT or response was cut to the configured limit before judging.
    truncated: bool
    error: str | None
    # Display position (1-based) in a group-mode judge call; None otherwise.
    position: int | None = None
    verdict_id: str | None = None
    # Which scale the reward's axis values are on: "expected" (every axis from logprobs or a model),
    # "integer" (none), "mixed" (some: the reward is not comparable with its group's); None when unscored.
    score_method: str | None = None
    # Why an invalid item is invalid, in one word ("turn_markers", "conversation", "input"); None otherwise.
    reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.status != AxisStatus.ok.value or self.reward is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "group_id": self.group_id,
            "reward": self.reward,
            "passed": self.passed,
            "scores": self.scores,
            "layers": self.layers,
            "status": self.status,
            "cache_hit": self.cache_hit,
            "truncated": self.truncated,
            "error": self.error,
            "position": self.position,
            "verdict_id": self.verdict_id,
            "score_method": self.score_method,
            "reason": self.reason,
        }


@dataclass(slots=True)
class RewardBatch:
    """Outcomes in input order (failed ones included, with the policy's reward), group statistics, usage."""

    outcomes: list[RewardOutcome]
    # Indices of failed items that ``on_failure: skip`` leaves out of the answer and of the group statistics.
    skipped: list[int]
    groups: list[GroupStats]
    usage: dict[str, int] = field(default_factory=dict)
    # Per group: judge calls and tokens spent on it now (cache hits cost nothing); group mode with k
    # permutations makes k calls per group (2k under a rubric with response-only layers, prmed@2).
    group_usage: dict[str, Usage] = field(default_factory=dict)

    @property
    def zero_variance_fraction(self) -> float | None:
        return zero_variance_fraction(self.groups)


def conversation_group(sample: Sample) -> str:
    """The group of an item that names none: its conversation (the prompt every rollout of a group shares)."""
    digest = hashlib.sha256(orjson.dumps(sample.canonical()["messages"], option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"conv:{digest[:16]}"


def prepare_item(index: int, raw: Any, settings: Settings) -> PreparedItem:
    """Validate and normalise one raw item (a dict or a :class:`RewardItemIn`); a bad one carries its error."""
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    raw_group = raw.get("group_id") if isinstance(raw, dict) else None
    item_id = raw_id if isinstance(raw_id, str) else None
    group_id = raw_group if isinstance(raw_group, str) else None
    try:
        item = raw if isinstance(raw, RewardItemIn) else RewardItemIn.model_validate(raw)
    except ValidationError as exc:
        return invalid_item(index, item_id, _validation_message(exc), group_id, _reason(exc))
    limit = settings.max_text_chars
    for name, text in item.texts():
        if len(text) > limit:
            return invalid_item(index, item.id, f"{name}: {len(text)} characters; the limit is {limit}", item.group_id)
    try:
        sample = normalise(
            item.sample_in(),
            max_reasoning_chars=settings.max_reasoning_chars,
            max_response_chars=settings.max_response_chars,
        )
    except ValidationError as exc:
        return invalid_item(index, item.id, _validation_message(exc), item.group_id, _reason(exc))
    return PreparedItem(index, item.id, item.group_id or conversation_group(sample), sample)


def invalid_item(
    index: int, item_id: str | None, error: str, group_id: str | None = None, reason: str = "input"
) -> PreparedItem:
    return PreparedItem(index, item_id, group_id, None, error, reason)


def _reason(exc: ValidationError) -> str:
    """The integrity guard that refused an item (judge.integrity), else "input" for any other bad field."""
    for error in exc.errors(include_url=False):
        if error.get("type") in INTEGRITY_REASONS:
            return str(error["type"])
    return "input"


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts)


def resolve_request(runtime: Runtime, rubric: str | None, judge: str | None) -> tuple[Rubric, JudgeProfile]:
    """The rubric and judge a reward request names, or the server's defaults."""
    judge = judge or runtime.settings.reward_judge
    if judge is None:
        raise RewardRequestError("no judge given: name `judge`, or set RJ_REWARD_JUDGE on the server", field="judge")
    return resolve(runtime, rubric or runtime.settings.reward_rubric, judge)


def deadline_s(runtime: Runtime, deadline_ms: int | None) -> float | None:
    if deadline_ms is not None:
        return deadline_ms / 1000
    return runtime.settings.reward_deadline_s or runtime.settings.default_deadline_s


async def score_rewards(
    runtime: Runtime,
    rubric: Rubric,
    profile: JudgeProfile,
    items: Sequence[PreparedItem],
    *,
    on_failure: OnFailure = "null",
    deadline: float | None = None,
    use_cache: bool = True,
    require_expected: bool = False,
) -> RewardBatch:
    """Score prepared items; group-mode profiles judge each group (same ``group_id``) in one call.

    ``require_expected``: an item whose reward would mix expected and integer axis scores fails with status
    ``no_logprobs`` instead (its reward would not be on the scale of its group's).
    """
    valid = [item for item in items if item.sample is not None]
    scored: dict[int, ScoredItem] = {}
    batch: ScoreBatch | None = None
    if valid and profile.mode == "group":
        groups: dict[str | None, list[PreparedItem]] = {}
        for item in valid:
            groups.setdefault(item.group_id, []).append(item)
        ordered = [item for members in groups.values() for item in members]
        batch = await runtime.scorer.score_groups(
            rubric,
            profile,
            [[m.sample for m in members if m.sample is not None] for members in groups.values()],
            deadline_s=deadline,
            use_cache=use_cache,
        )
        scored = {item.index: result for item, result in zip(ordered, batch.items, strict=True)}
    elif valid:
        samples = [item.sample for item in valid if item.sample is not None]
        batch = await runtime.scorer.score(rubric, profile, samples, deadline_s=deadline, use_cache=use_cache)
        scored = {item.index: result for item, result in zip(valid, batch.items, strict=True)}

    floor = 0.0 if rubric.reward_policy.normalise == "minmax" else 1.0
    outcomes: list[RewardOutcome] = []
    skipped: list[int] = []
    for item in items:
        outcome = reward_outcome(item, scored.get(item.index), rubric)
        if require_expected and outcome.status == AxisStatus.ok.value and outcome.score_method != "expected":
            outcome.status = NO_LOGPROBS
            outcome.error = (
                f"require_expected: the reward would use {outcome.score_method} scores "
                "(the judge gave no usable logprobs for some axes)"
            )
            outcome.reward = None
        if outcome.failed:
            if on_failure == "floor":
                outcome.reward = floor
            elif on_failure == "skip":
                skipped.append(item.index)
            else:
                outcome.reward = None
        outcomes.append(outcome)

    left_out = set(skipped)
    by_group: dict[str, list[float | None]] = {}
    for outcome in outcomes:
        if outcome.index not in left_out and outcome.group_id is not None:
            by_group.setdefault(outcome.group_id, []).append(outcome.reward)
    stats = [group_stats(group_id, rewards) for group_id, rewards in by_group.items()]
    spent: dict[str, Usage] = {}
    seen: set[str] = set()
    for item in items:
        result = scored.get(item.index)
        if item.group_id is None or result is None or result.cached:
            continue
        verdict = result.verdict
        if verdict is not None and verdict.id not in seen:
            seen.add(verdict.id)
            spent[item.group_id] = spent.get(item.group_id, Usage()).add(verdict.usage)
    return RewardBatch(outcomes, skipped, stats, _usage(outcomes, skipped, batch), spent)


def reward_outcome(item: PreparedItem, result: ScoredItem | None, rubric: Rubric) -> RewardOutcome:
    """One item's outcome, before the failure policy: the aggregate reward, or no reward and a status."""
    axis_keys = rubric.axis_keys
    empty_layers: dict[str, float | None] = {layer.key: None for layer in rubric.layers}
    if item.sample is None or result is None:
        return RewardOutcome(
            item.index, item.id, item.group_id, None, None, dict.fromkeys(axis_keys), empty_layers, INVALID,
            False, False, item.error or "not scored", reason=item.reason or "input",
        )  # fmt: skip
    sample = item.sample
    verdict = result.verdict
    if verdict is None:
        return RewardOutcome(
            item.index, item.id, item.group_id, None, None, dict.fromkeys(axis_keys), empty_layers,
            AxisStatus.timeout.value, False, sample.clipped, DEADLINE_ERROR,
        )  # fmt: skip
    integers: dict[str, int | None] = {}
    expected: dict[str, float | None] = {}
    values: dict[str, float | None] = {}
    use_expected = rubric.reward_policy.use_expected
    methods: set[str] = set()
    for key in axis_keys:
        axis = verdict.axes[key]
        integers[key] = axis.score
        expected[key] = axis.expected
        if axis.score is None:
            values[key] = None
        elif use_expected and axis.expected is not None:
            values[key] = axis.expected
            methods.add("expected")
        else:
            values[key] = float(axis.score)
            methods.add("integer")
    agg = aggregate(
        rubric,
        integers,
        expected,
        distributions=level_distributions(verdict.axes),
        **output_facts(sample, rubric).aggregation_kwargs(),
    )
    status = AxisStatus.ok.value
    if not verdict.complete:
        present = {axis.status for axis in verdict.axes.values()}
        status = next((s.value for s in _STATUS_ORDER if s in present), AxisStatus.judge_error.value)
    error = verdict.error
    if status == AxisStatus.ok.value and agg.reward is None:
        error = agg.reason
    return RewardOutcome(
        index=item.index,
        id=item.id,
        group_id=item.group_id,
        reward=agg.reward if status == AxisStatus.ok.value else None,
        passed=agg.passed,
        scores=values,
        layers=agg.layers,
        status=status,
        cache_hit=result.cached,
        truncated=sample.clipped,
        error=error,
        position=verdict.group.position if verdict.group is not None else None,
        verdict_id=verdict.id,
        score_method=("mixed" if len(methods) > 1 else next(iter(methods))) if methods else None,
    )


def _usage(outcomes: Sequence[RewardOutcome], skipped: Sequence[int], batch: ScoreBatch | None) -> dict[str, int]:
    usage = batch.usage if batch is not None else Usage()
    return {
        "items": len(outcomes),
        "rewarded": sum(1 for o in outcomes if not o.failed),
        "failed": sum(1 for o in outcomes if o.failed),
        "skipped": len(skipped),
        "invalid": sum(1 for o in outcomes if o.status == INVALID),
        # Items refused by an integrity guard (a policy trying its luck shows up here first).
        "refused": sum(1 for o in outcomes if o.reason in INTEGRITY_REASONS),
        "mixed_scales": sum(1 for o in outcomes if o.score_method == "mixed"),
        "timed_out": sum(1 for o in outcomes if o.status == AxisStatus.timeout.value),
        "cached": sum(1 for o in outcomes if o.cache_hit),
        "truncated": sum(1 for o in outcomes if o.truncated),
        "pending_writes": batch.pending_writes if batch is not None else 0,
        **usage.model_dump(),
    }


def _group_cost(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {
        "calls": usage.calls,
        "prompt_tokens": usage.prompt_tokens,
        "cached_tokens": usage.cached_tokens,
        "completion_tokens": usage.completion_tokens,
        "hedges": usage.hedges,
    }


async def reward_request(runtime: Runtime, request: RewardsRequest) -> dict[str, Any]:
    """Serve ``POST /v1/rewards``: per-item rewards, per-group statistics, the zero-variance fraction, usage."""
    settings = runtime.settings
    if len(request.items) > settings.max_samples_per_request:
        raise LimitExceeded(
            f"{len(request.items)} items in one request; the limit is {settings.max_samples_per_request}",
            field="items",
        )
    rubric, profile = resolve_request(runtime, request.rubric, request.judge)
    profile = with_rationale(profile, request.rationale)
    prepared = [prepare_item(i, raw, settings) for i, raw in enumerate(request.items)]
    batch = await score_rewards(
        runtime,
        rubric,
        profile,
        prepared,
        on_failure=request.on_failure,
        deadline=deadline_s(runtime, request.deadline_ms),
        use_cache=request.cache,
        require_expected=request.require_expected,
    )
    skipped = set(batch.skipped)
    return {
        "rubric": rubric.ref,
        "rubric_hash": rubric.content_hash,
        "judge": profile.name,
        "mode": profile.mode,
        "axes": rubric.axis_keys,
        "items": [o.as_dict() for o in batch.outcomes if o.index not in skipped],
        "groups": [
            {
                "group_id": g.group_id,
                "size": g.size,
                "scored": g.scored,
                "mean": g.mean,
                "std": g.std,
                "distinct": g.distinct,
                "zero_variance": g.zero_variance,
                **_group_cost(batch.group_usage.get(g.group_id)),
            }
            for g in batch.groups
        ],
        "zero_variance_fraction": batch.zero_variance_fraction,
        "skipped": batch.skipped,
        "usage": {**batch.usage, "cost": cost(profile.prices, batch.usage)},
    }
