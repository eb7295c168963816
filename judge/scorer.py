"""The Scorer: normalise -> hash -> in-flight dedup -> cache -> store -> backend -> store + cache.

Everything that scores (the HTTP API, the CLI, bulk jobs, reward adapters) goes through here, so
deduplication, caching and the never-invent-a-score rule hold everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge import metrics
from judge.backends.base import GroupJudgeBackend, JudgeBackend
from judge.backends.openai.group_prompts import group_orders
from judge.cache import VerdictCache
from judge.integrity.facts import level_distributions, output_facts
from judge.lookup import StoreLookup
from judge.outage import OutageLog
from judge.profiles import JudgeProfile
from judge.samples import Sample, content_hash
from judge.verdicts import AxisResult, AxisStatus, GroupPlacement, JudgeOutcome, Usage, Verdict
from judge.writer import VerdictWriter
from rubrics.aggregation import aggregate
from rubrics.schema import Rubric

log = logging.getLogger(__name__)

BackendFactory = Callable[[JudgeProfile], JudgeBackend]


def cache_key(rubric: Rubric, profile: JudgeProfile, sample: Sample) -> str:
    return hashlib.sha256(f"{rubric.content_hash}:{profile.hash}:{sample.hash}".encode()).hexdigest()


def group_composition(samples: Sequence[Sample]) -> str:
    """Hash of a group's distinct samples, whatever their order or repeats."""
    return hashlib.sha256(",".join(sorted({s.hash for s in samples})).encode()).hexdigest()


def group_cache_key(rubric: Rubric, profile: JudgeProfile, composition: str, sample: Sample) -> str:
    """A group-mode sample's key: its score is relative to the other candidates, so the composition is part of it."""
    return hashlib.sha256(
        f"{rubric.content_hash}:{profile.hash}:group:{composition}:{sample.hash}".encode()
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class _GroupPlan:
    """One group-mode judge call: distinct samples sharing a conversation, and their cache keys by sample hash."""

    indices: list[int]
    samples: list[Sample]
    composition: str
    keys: dict[str, str]

    @property
    def call_key(self) -> str:
        # Every key depends on the composition (and rubric and profile), so the least one names the call
        # whatever order the samples came in.
        return min(self.keys.values())


@dataclass(slots=True)
class ScoredItem:
    """The result for one input sample. ``verdict`` is None only when the deadline passed first."""

    sample: Sample
    key: str
    _verdict: Verdict | None
    cached: bool
    # Where a cached verdict came from: "cache" or "store"; None when judged now or timed out.
    source: str | None = None
    # A cache hit as decoded JSON. Rendering reads it as is; the typed Verdict is built only on first use
    # (validating 13 axes per hit was a third of a cached RL batch's time).
    raw: dict[str, Any] | None = None

    @classmethod
    def hit(cls, sample: Sample, key: str, found: Verdict | dict[str, Any], source: str) -> ScoredItem:
        if isinstance(found, Verdict):
            return cls(sample, key, found, cached=True, source=source)
        return cls(sample, key, None, cached=True, source=source, raw=found)

    @property
    def verdict(self) -> Verdict | None:
        if self._verdict is None and self.raw is not None:
            self._verdict = Verdict.model_validate(self.raw)
        return self._verdict

    @property
    def timed_out(self) -> bool:
        return self._verdict is None and self.raw is None


@dataclass(frozen=True, slots=True)
class ScoreBatch:
    items: list[ScoredItem]
    usage: Usage
    # Verdicts answered in this batch that the store has not taken yet (held for a retry: judge/writer.py).
    pending_writes: int = 0

    @property
    def cached(self) -> int:
        return sum(1 for i in self.items if i.cached)


class Scorer:
    """Scores samples under a rubric with a judge profile. Owns one backend per profile."""

    def __init__(
        self,
        *,
        cache: VerdictCache,
        sessions: async_sessionmaker[AsyncSession] | None,
        backend_factory: BackendFactory,
        writer: VerdictWriter | None = None,
        grace_s: float | None = None,
    ) -> None:
        self._cache = cache
        self._sessions = sessions
        # Concurrent cache misses share one store query (see judge.lookup).
        self._stored = StoreLookup(sessions) if sessions is not None else None
        self._backend_factory = backend_factory
        self._backends: dict[str, JudgeBackend] = {}
        self._inflight: dict[str, asyncio.Task[Verdict]] = {}
        self._group_inflight: dict[str, asyncio.Task[dict[str, Verdict]]] = {}
        self._writer = writer if writer is not None else VerdictWriter(sessions, cache)
        self._store_log = OutageLog(log, "verdict store")
        self._closing = False
        # Judge calls whose every waiter gave up: cancelled ``grace_s`` after the last waiter's deadline, so
        # abandoned calls do not hold the judge's slots while fresh requests time out (None: never cancelled).
        self._grace_s = grace_s
        self._expiry: dict[str, float] = {}

    @property
    def writer(self) -> VerdictWriter:
        return self._writer

    def backend(self, profile: JudgeProfile) -> JudgeBackend:
        """The backend for a profile, built on first use (raises JudgeUnavailable if it cannot be)."""
        ident = profile.identity
        backend = self._backends.get(ident)
        if backend is None:
            backend = self._backend_factory(profile)
            self._backends[ident] = backend
        return backend

    async def score(
        self,
        rubric: Rubric,
        profile: JudgeProfile,
        samples: Sequence[Sample],
        *,
        deadline_s: float | None = None,
        use_cache: bool = True,
    ) -> ScoreBatch:
        """Score samples; results come back in input order.

        With a deadline, items not finished in time come back with ``verdict=None``; their judge
        calls go on, and their verdicts are stored and cached when they arrive.
        """
        backend = self.backend(profile)
        keys = [cache_key(rubric, profile, s) for s in samples]
        found: dict[str, tuple[Verdict | dict[str, Any], str]] = {}
        if use_cache:
            found = await self._lookup(list(dict.fromkeys(keys)))
        tasks: dict[str, asyncio.Task[Verdict]] = {}
        for key, sample in zip(keys, samples, strict=True):
            if key in found or key in tasks:
                continue
            task = self._inflight.get(key)
            if task is None:
                task = asyncio.create_task(self._judge(backend, key, sample, rubric, profile))
                self._inflight[key] = task
                task.add_done_callback(self._forget(key))
                metrics.CACHE_MISSES.inc()
            tasks[key] = task
        if tasks:
            # asyncio.wait never cancels: late results still reach the store and the cache (within the grace).
            self._claim(tasks, deadline_s)
            await asyncio.wait(set(tasks.values()), timeout=deadline_s)
        usage = Usage()
        counted: set[str] = set()
        items: list[ScoredItem] = []
        for key, sample in zip(keys, samples, strict=True):
            if key in found:
                hit, source = found[key]
                items.append(ScoredItem.hit(sample, key, hit, source))
                continue
            task = tasks[key]
            if not task.done() or task.cancelled():
                items.append(ScoredItem(sample, key, None, cached=False))
                continue
            verdict = task.result()
            if key not in counted:
                usage = usage.add(verdict.usage)
                counted.add(key)
            items.append(ScoredItem(sample, key, verdict, cached=False))
        return ScoreBatch(items, usage, self._pending_writes(items))

    async def score_groups(
        self,
        rubric: Rubric,
        profile: JudgeProfile,
        groups: Sequence[Sequence[Sample]],
        *,
        deadline_s: float | None = None,
        use_cache: bool = True,
    ) -> ScoreBatch:
        """Group-mode scoring: one judge call per group sees all its responses; items in input order, flattened.

        A group is split by conversation (samples with other messages or reference are judged apart) and
        shown once per distinct sample, in an order seeded by its content; each verdict records its display
        position. A group is served from the cache only when every distinct sample is found (scores of one
        call are relative to each other, so they are not mixed with another call's); otherwise it is judged
        again as a whole. Dedup, store, cache and deadline behave as in :meth:`score`. A backend that cannot
        judge groups scores the samples one by one.
        """
        backend = self.backend(profile)
        flat = [sample for group in groups for sample in group]
        if not isinstance(backend, GroupJudgeBackend):
            log.warning("judge %s cannot judge groups; scoring samples one by one", profile.name)
            return await self.score(rubric, profile, flat, deadline_s=deadline_s, use_cache=use_cache)
        plans: list[_GroupPlan] = []
        plan_of: dict[int, _GroupPlan] = {}
        start = 0
        for group in groups:
            by_context: dict[str, list[int]] = {}
            for offset, sample in enumerate(group):
                by_context.setdefault(_context_hash(sample), []).append(start + offset)
            start += len(group)
            for indices in by_context.values():
                distinct = list({flat[i].hash: flat[i] for i in indices}.values())
                composition = group_composition(distinct)
                keys = {s.hash: group_cache_key(rubric, profile, composition, s) for s in distinct}
                plan = _GroupPlan(indices, distinct, composition, keys)
                plans.append(plan)
                plan_of.update(dict.fromkeys(indices, plan))

        found: dict[str, tuple[Verdict | dict[str, Any], str]] = {}
        if use_cache:
            found = await self._lookup(list(dict.fromkeys(k for plan in plans for k in plan.keys.values())))
        tasks: dict[str, asyncio.Task[dict[str, Verdict]]] = {}
        for plan in plans:
            if all(key in found for key in plan.keys.values()) or plan.call_key in tasks:
                continue
            task = self._group_inflight.get(plan.call_key)
            if task is None:
                task = asyncio.create_task(self._judge_group(backend, plan, rubric, profile))
                self._group_inflight[plan.call_key] = task
                task.add_done_callback(self._forget_group(plan.call_key))
                metrics.CACHE_MISSES.inc(len(plan.samples))
            tasks[plan.call_key] = task
        if tasks:
            # As in score(): late verdicts still reach the store and the cache (within the grace).
            self._claim(tasks, deadline_s)
            await asyncio.wait(set(tasks.values()), timeout=deadline_s)

        usage = Usage()
        counted: set[str] = set()
        items: list[ScoredItem] = []
        for i, sample in enumerate(flat):
            plan = plan_of[i]
            key = plan.keys[sample.hash]
            task = tasks.get(plan.call_key)
            if task is None:
                hit, source = found[key]
                items.append(ScoredItem.hit(sample, key, hit, source))
            elif not task.done() or task.cancelled():
                items.append(ScoredItem(sample, key, None, cached=False))
            else:
                verdict = task.result()[sample.hash]
                if key not in counted:
                    usage = usage.add(verdict.usage)
                    counted.add(key)
                items.append(ScoredItem(sample, key, verdict, cached=False))
        return ScoreBatch(items, usage, self._pending_writes(items))

    def _claim(self, tasks: Mapping[str, asyncio.Task[Any]], deadline_s: float | None) -> None:
        """This waiter wants each call until its deadline plus the grace (for ever without a deadline).

        A call is cancelled once the latest claim on it has passed: it answered nobody then, so nothing
        answered is lost, and its judge slot goes to fresh requests instead of being held for minutes.
        """
        if self._grace_s is None:
            return
        loop = asyncio.get_running_loop()
        expiry = math.inf if deadline_s is None else loop.time() + deadline_s + self._grace_s
        for key, task in tasks.items():
            current = self._expiry.get(key)
            if current is None:
                task.add_done_callback(self._forget_expiry(key))
            elif current >= expiry:
                continue
            self._expiry[key] = expiry
            if expiry != math.inf:
                loop.call_at(expiry, self._expire, key, task)

    def _forget_expiry(self, key: str) -> Callable[[asyncio.Task[Any]], None]:
        def done(_: asyncio.Task[Any]) -> None:
            self._expiry.pop(key, None)

        return done

    def _expire(self, key: str, task: asyncio.Task[Any]) -> None:
        if task.done() or self._expiry.get(key, 0.0) > asyncio.get_running_loop().time():
            return
        log.info("judge call %s abandoned by every waiter; cancelled after the %.1f s grace", key[:12], self._grace_s)
        metrics.JUDGE_CALLS_ABANDONED.inc()
        # Off the in-flight maps at once: a request arriving before the cancel lands starts a fresh call.
        for inflight in (self._inflight, self._group_inflight):
            if inflight.get(key) is task:
                del inflight[key]
        task.cancel()

    def _pending_writes(self, items: list[ScoredItem]) -> int:
        ids = {item.verdict.id for item in items if not item.cached and not item.timed_out and item.verdict is not None}
        return sum(1 for verdict_id in ids if self._writer.is_pending(verdict_id))

    def _forget_group(self, key: str) -> Callable[[asyncio.Task[dict[str, Verdict]]], None]:
        def done(_: asyncio.Task[dict[str, Verdict]]) -> None:
            self._group_inflight.pop(key, None)

        return done

    async def _judge_group(
        self, backend: GroupJudgeBackend, plan: _GroupPlan, rubric: Rubric, profile: JudgeProfile
    ) -> dict[str, Verdict]:
        orders = group_orders([s.hash for s in plan.samples], profile.permutations)
        shown = [plan.samples[i] for i in orders[0]]
        started = time.perf_counter()
        # One call per display order, concurrently; each sample's scores are averaged over the orders.
        runs = await asyncio.gather(
            *(self._judge_order(backend, [plan.samples[i] for i in order], rubric, profile) for order in orders)
        )
        by_sample: dict[str, list[tuple[int, JudgeOutcome]]] = {}
        for order, outcomes in zip(orders, runs, strict=True):
            for position, (index, outcome) in enumerate(zip(order, outcomes, strict=True), start=1):
                by_sample.setdefault(plan.samples[index].hash, []).append((position, outcome))
        outcomes = [average_outcomes(by_sample[sample.hash], rubric) for sample in shown]
        latency_ms = (time.perf_counter() - started) * 1000
        verdicts: dict[str, Verdict] = {}
        for position, (sample, outcome) in enumerate(zip(shown, outcomes, strict=True), start=1):
            outcome = _complete_axes(outcome, rubric)
            verdicts[sample.hash] = Verdict(
                id=uuid.uuid4().hex,
                cache_key=plan.keys[sample.hash],
                sample_hash=sample.hash,
                rubric_ref=rubric.ref,
                rubric_hash=rubric.content_hash,
                judge=profile.name,
                profile_hash=profile.hash,
                axes=outcome.axes,
                usage=outcome.usage,
                error=outcome.error,
                latency_ms=latency_ms,
                clipped=sample.clipped,
                created_at=time.time(),
                group=GroupPlacement(hash=plan.composition, position=position, size=len(shown)),
                **_outcome_summary(rubric, outcome, sample),
            )
        # Written together, so the group-commit writer stores them in one transaction.
        await asyncio.gather(*(self._writer.write(verdicts[s.hash], s) for s in shown))
        return verdicts

    async def _judge_order(
        self, backend: GroupJudgeBackend, shown: list[Sample], rubric: Rubric, profile: JudgeProfile
    ) -> list[JudgeOutcome]:
        try:
            outcomes = await backend.score_group(shown, rubric)
            if len(outcomes) != len(shown):
                raise ValueError(f"backend returned {len(outcomes)} outcomes for {len(shown)} samples")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("judge %s failed on a group of %d", profile.name, len(shown))
            error = f"{type(exc).__name__}: {exc}"
            outcomes = [JudgeOutcome.all_failed(rubric.axis_keys, AxisStatus.judge_error, error) for _ in shown]
        return [_complete_axes(outcome, rubric) for outcome in outcomes]

    def _forget(self, key: str) -> Callable[[asyncio.Task[Verdict]], None]:
        def done(_: asyncio.Task[Verdict]) -> None:
            self._inflight.pop(key, None)

        return done

    async def _lookup(self, keys: list[str]) -> dict[str, tuple[Verdict | dict[str, Any], str]]:
        found: dict[str, tuple[Verdict | dict[str, Any], str]] = {}
        for key, raw in (await self._cache.get_many(keys)).items():
            try:
                decoded = orjson.loads(raw)
            except orjson.JSONDecodeError:
                decoded = None
            # Written by this service, so the shape is known; anything else is dropped and judged again.
            if isinstance(decoded, dict) and isinstance(decoded.get("axes"), dict) and "id" in decoded:
                found[key] = (decoded, "cache")
            else:
                log.warning("dropping unreadable cache entry %s", key)
        if found:
            metrics.CACHE_HITS.labels(tier="cache").inc(len(found))
        missing = [k for k in keys if k not in found]
        if missing and self._sessions is not None:
            try:
                stored = await self._stored.find(missing) if self._stored is not None else {}
                self._store_log.succeeded()
            except Exception as exc:
                self._store_log.failed("lookup failed; judging instead", exc)
                stored = {}
            if stored:
                metrics.CACHE_HITS.labels(tier="store").inc(len(stored))
                await self._cache.set_many({k: orjson.dumps(v.model_dump(mode="json")) for k, v in stored.items()})
            found.update({k: (v, "store") for k, v in stored.items()})
        return found

    async def _judge(
        self, backend: JudgeBackend, key: str, sample: Sample, rubric: Rubric, profile: JudgeProfile
    ) -> Verdict:
        started = time.perf_counter()
        try:
            outcome = await backend.score(sample, rubric)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A backend bug must not take the batch down, nor produce a score.
            log.exception("judge %s failed on sample %s", profile.name, sample.hash[:12])
            outcome = JudgeOutcome.all_failed(rubric.axis_keys, AxisStatus.judge_error, f"{type(exc).__name__}: {exc}")
        outcome = _complete_axes(outcome, rubric)
        verdict = Verdict(
            id=uuid.uuid4().hex,
            cache_key=key,
            sample_hash=sample.hash,
            rubric_ref=rubric.ref,
            rubric_hash=rubric.content_hash,
            judge=profile.name,
            profile_hash=profile.hash,
            axes=outcome.axes,
            usage=outcome.usage,
            error=outcome.error,
            latency_ms=(time.perf_counter() - started) * 1000,
            clipped=sample.clipped,
            created_at=time.time(),
            **_outcome_summary(rubric, outcome, sample),
        )
        await self._writer.write(verdict, sample)
        return verdict

    async def aclose(self) -> None:
        """Let judge calls in flight finish (so their verdicts are kept), then close backends."""
        self._closing = True
        pending: list[asyncio.Task[Any]] = [*self._inflight.values(), *self._group_inflight.values()]
        if pending:
            await asyncio.wait(pending, timeout=30)
        await self._writer.aclose()
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()


def average_outcomes(runs: Sequence[tuple[int, JudgeOutcome]], rubric: Rubric) -> JudgeOutcome:
    """One sample's outcome over the display orders it was judged in: ``(position, outcome)`` per order.

    Per axis, over the orders where it was scored: the integer score is the rounded mean (halves up), the
    expected score and mass the means (when every such order gave one), the level distribution the mean
    distribution; ``by_position`` keeps each order's integer. An axis scored in no order keeps the first
    order's failure. Usage adds up over the orders. A single order is returned as it is.
    """
    if len(runs) == 1:
        return runs[0][1]
    usage = Usage()
    for _, outcome in runs:
        usage = usage.add(outcome.usage)
    axes: dict[str, AxisResult] = {}
    for key in rubric.axis_keys:
        ok = [(position, outcome.axes[key]) for position, outcome in runs if outcome.axes[key].status is AxisStatus.ok]
        if not ok:
            axes[key] = runs[0][1].axes[key]
            continue
        scores = [axis.score for _, axis in ok if axis.score is not None]
        mean = sum(scores) / len(scores)
        expected = [axis.expected for _, axis in ok]
        masses = [axis.mass for _, axis in ok]
        distributions = [axis.probabilities for _, axis in ok]
        averaged: dict[int, float] | None = None
        if all(d for d in distributions):
            averaged = {
                level: sum((d or {}).get(level, 0.0) for d in distributions) / len(distributions)
                for level in range(1, 6)
            }
            averaged = {level: p for level, p in averaged.items() if p > 0}
        axes[key] = AxisResult(
            score=int(mean + 0.5),
            expected=sum(e for e in expected if e is not None) / len(expected)
            if all(e is not None for e in expected)
            else None,
            mass=sum(m for m in masses if m is not None) / len(masses) if all(m is not None for m in masses) else None,
            probabilities=averaged,
            status=AxisStatus.ok,
            rationale=ok[0][1].rationale,
            score_method=ok[0][1].score_method,
            by_position={position: axis.score for position, axis in ok if axis.score is not None},
        )
    errors = list(dict.fromkeys(outcome.error for _, outcome in runs if outcome.error))
    return JudgeOutcome(
        axes=axes,
        usage=usage,
        error="; ".join(errors) if errors and not all(a.status is AxisStatus.ok for a in axes.values()) else None,
    )


def _context_hash(sample: Sample) -> str:
    """What the samples of one group call must share: the conversation and the reference."""
    return content_hash({"messages": sample.canonical()["messages"], "reference": sample.reference})


def _outcome_summary(rubric: Rubric, outcome: JudgeOutcome, sample: Sample) -> dict[str, Any]:
    """Reward and pass under the rubric's own policy, as stored with the verdict."""
    agg = aggregate(
        rubric,
        {k: a.score for k, a in outcome.axes.items()},
        {k: a.expected for k, a in outcome.axes.items()},
        distributions=level_distributions(outcome.axes),
        **output_facts(sample, rubric).aggregation_kwargs(),
    )
    return {"reward": agg.reward, "passed": agg.passed}


def _complete_axes(outcome: JudgeOutcome, rubric: Rubric) -> JudgeOutcome:
    """Every rubric axis gets a result: one a backend left out is a parse error, never a score."""
    keys = rubric.axis_keys
    missing = [k for k in keys if k not in outcome.axes]
    expected = set(keys)
    extra = [k for k in outcome.axes if k not in expected]
    if not missing and not extra:
        return outcome
    axes = {k: outcome.axes[k] for k in rubric.axis_keys if k in outcome.axes}
    for k in missing:
        axes[k] = AxisResult.failed(AxisStatus.parse_error, "the judge returned no result for this axis")
    ordered = {k: axes[k] for k in rubric.axis_keys}
    return outcome.model_copy(update={"axes": ordered})
