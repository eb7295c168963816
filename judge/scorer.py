"""The Scorer: normalise -> hash -> in-flight dedup -> cache -> store -> backend -> store + cache.

Everything that scores (the HTTP API, the CLI, bulk jobs, reward adapters) goes through here, so
deduplication, caching and the never-invent-a-score rule hold everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge import metrics
from judge.backends.base import GroupJudgeBackend, JudgeBackend
from judge.backends.openai.group_prompts import group_orders
from judge.cache import VerdictCache
from judge.lookup import StoreLookup
from judge.outage import OutageLog
from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.scoring.batch import ScoreBatch, ScoredItem
from judge.scoring.groups import GroupPlan, average_outcomes, plan_groups
from judge.scoring.inflight import InflightCalls
from judge.scoring.keys import cache_key
from judge.scoring.outcomes import complete_axes, outcome_summary
from judge.verdicts import AxisStatus, GroupPlacement, JudgeOutcome, Usage, Verdict
from judge.writer import VerdictWriter
from rubrics.schema import Rubric

log = logging.getLogger(__name__)

BackendFactory = Callable[[JudgeProfile], JudgeBackend]


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
        # Judge calls whose every waiter gave up are cancelled ``grace_s`` after the last waiter's deadline, so
        # abandoned calls do not hold the judge's slots while fresh requests time out (None: never cancelled).
        self._inflight = InflightCalls(grace_s)
        self._writer = writer if writer is not None else VerdictWriter(sessions, cache)
        self._store_log = OutageLog(log, "verdict store")
        self._closing = False

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
            task = self._inflight.single(key)
            if task is None:
                task = asyncio.create_task(self._judge(backend, key, sample, rubric, profile))
                self._inflight.add_single(key, task)
                metrics.CACHE_MISSES.inc()
            tasks[key] = task
        if tasks:
            # Never cancelled here: late results still reach the store and the cache (within the grace).
            await self._inflight.wait(tasks, deadline_s)
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
        plans, plan_of = plan_groups(rubric, profile, groups, flat)
        found: dict[str, tuple[Verdict | dict[str, Any], str]] = {}
        if use_cache:
            found = await self._lookup(list(dict.fromkeys(k for plan in plans for k in plan.keys.values())))
        tasks: dict[str, asyncio.Task[dict[str, Verdict]]] = {}
        for plan in plans:
            if all(key in found for key in plan.keys.values()) or plan.call_key in tasks:
                continue
            task = self._inflight.group(plan.call_key)
            if task is None:
                task = asyncio.create_task(self._judge_group(backend, plan, rubric, profile))
                self._inflight.add_group(plan.call_key, task)
                metrics.CACHE_MISSES.inc(len(plan.samples))
            tasks[plan.call_key] = task
        if tasks:
            # As in score(): late verdicts still reach the store and the cache (within the grace).
            await self._inflight.wait(tasks, deadline_s)

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

    def _pending_writes(self, items: list[ScoredItem]) -> int:
        ids = {item.verdict.id for item in items if not item.cached and not item.timed_out and item.verdict is not None}
        return sum(1 for verdict_id in ids if self._writer.is_pending(verdict_id))

    async def _judge_group(
        self, backend: GroupJudgeBackend, plan: GroupPlan, rubric: Rubric, profile: JudgeProfile
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
            outcome = complete_axes(outcome, rubric)
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
                **outcome_summary(rubric, outcome, sample),
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
        return [complete_axes(outcome, rubric) for outcome in outcomes]

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
        outcome = complete_axes(outcome, rubric)
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
            **outcome_summary(rubric, outcome, sample),
        )
        await self._writer.write(verdict, sample)
        return verdict

    async def aclose(self) -> None:
        """Let judge calls in flight finish (so their verdicts are kept), then close backends."""
        self._closing = True
        pending = self._inflight.pending()
        if pending:
            await asyncio.wait(pending, timeout=30)
        await self._writer.aclose()
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()
