"""Serving local reward models: registry names (or artifact paths) -> one batching engine each, owned by the runtime.

An engine is loaded on the first request that needs it (torch and the weights come in then, in a thread), and
closed with the runtime. A profile or request naming a registered model by its bare name follows the name's
active version (the highest one when none is active): :meth:`RewardModelPool.reload` loads that version and
swaps it into the running engine between batches, so requests in flight are never dropped. ``name@version``
and paths are pinned. Also: stored verdicts -> training records, for ``rubric-judge rm train``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.backends.base import JudgeBackend
from judge.backends.reward_model_judge import RewardModelJudge
from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.store.reward_models_repository import RewardModelNotFound, RewardModelRecord, RewardModelRepository
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import AxisStatus, JudgeOutcome
from reward_model.artifacts import METADATA_FILE
from reward_model.data import Conversation, LabelledRecord
from rubrics.schema import Rubric

if TYPE_CHECKING:
    from reward_model.engine import RewardEngine
    from reward_model.model import ScoringModel

log = logging.getLogger(__name__)

BackendFactory = Callable[[JudgeProfile], JudgeBackend]


@dataclass(frozen=True)
class Resolved:
    """Where a reference points: the artifact directory and, for a registered model, its registry entry."""

    path: Path
    record: RewardModelRecord | None


@dataclass(frozen=True)
class Swap:
    ref: str
    previous: str
    current: str
    record: RewardModelRecord | None


def split_ref(ref: str) -> tuple[str, int | None]:
    """``name@version`` -> (name, version); a bare name (or a path) -> (ref, None)."""
    name, at, version = ref.rpartition("@")
    if at and name and version.isdigit():
        return name, int(version)
    return ref, None


def _load(path: Path) -> ScoringModel:
    from reward_model.artifacts import load_scoring_model

    return load_scoring_model(path)


def _engine_of(model: ScoringModel, name: str) -> RewardEngine:
    from reward_model.engine import RewardEngine

    return RewardEngine(model, name=f"reward-engine:{name}")


class RewardModelPool:
    """The reward-model engines of one process, by reference (registered name, ``name@version`` or a path)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession] | None,
        *,
        loader: Callable[[Path], ScoringModel] = _load,
    ) -> None:
        self._sessions = sessions
        self._loader = loader
        self._engines: dict[str, RewardEngine] = {}
        self._sources: dict[str, Resolved] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    async def resolve(self, ref: str, *, allow_path: bool = True) -> Resolved:
        """A registered ``name`` (its active version, else the highest), ``name@version``, or an artifact directory."""
        record = await self._registered(ref)
        if record is not None:
            return Resolved(Path(record.path), record)
        path = Path(ref).expanduser()
        if allow_path and (path / METADATA_FILE).is_file():
            return Resolved(path, None)
        raise RewardModelNotFound(f"no reward model {ref!r} in the registry" + (" or on disk" if allow_path else ""))

    async def _registered(self, ref: str) -> RewardModelRecord | None:
        if self._sessions is None:
            return None
        name, version = split_ref(ref)
        if "/" in name or "\\" in name:
            return None
        async with self._sessions() as session:
            repo = RewardModelRepository(session)
            if version is not None:
                return await repo.get(name, version)
            return await repo.get_active(name) or await repo.get(name)

    async def engine(self, ref: str, *, allow_path: bool = True) -> RewardEngine:
        """The engine serving ``ref``, loaded on first use (off the event loop)."""
        engine = self._engines.get(ref)
        if engine is not None:
            return engine
        lock = self._locks.setdefault(ref, asyncio.Lock())
        async with lock:
            engine = self._engines.get(ref)
            if engine is not None:
                return engine
            if self._closed:
                raise JudgeUnavailable("the reward-model pool is closed", field="reward_model")
            source = await self.resolve(ref, allow_path=allow_path)
            model = await asyncio.to_thread(self._loader, source.path)
            engine = _engine_of(model, ref)
            self._engines[ref], self._sources[ref] = engine, source
            log.info("reward model %s loaded from %s (version %s)", ref, source.path, model.version[:12])
            return engine

    def loaded(self) -> dict[str, dict[str, Any]]:
        """What each loaded reference serves now."""
        out: dict[str, dict[str, Any]] = {}
        for ref, engine in self._engines.items():
            source = self._sources[ref]
            out[ref] = {
                "artifact_id": engine.version,
                "path": str(source.path),
                "version": source.record.version if source.record is not None else None,
                "swaps": engine.stats.swaps,
            }
        return out

    async def reload(self, name: str) -> list[Swap]:
        """Swap the current version of ``name`` into every loaded engine that follows it (bare-name references).

        A reference not loaded yet needs nothing: its first use loads the current version.
        """
        swaps: list[Swap] = []
        for ref in [r for r in self._engines if r == name]:
            async with self._locks.setdefault(ref, asyncio.Lock()):
                engine = self._engines[ref]
                source = await self.resolve(ref)
                if source.path == self._sources[ref].path and source.record == self._sources[ref].record:
                    continue
                model = await asyncio.to_thread(self._loader, source.path)
                previous = engine.swap(model)
                self._sources[ref] = source
                swaps.append(Swap(ref, previous, model.version, source.record))
                log.info("reward model %s swapped %s -> %s", ref, previous[:12], model.version[:12])
        return swaps

    def backend_factory(self, fallback: BackendFactory) -> BackendFactory:
        """``fallback`` for every profile but ``backend: reward_model``, whose judges score through this pool."""

        def build(profile: JudgeProfile) -> JudgeBackend:
            if profile.backend == "reward_model":
                return PooledRewardModelJudge(profile, self)
            return fallback(profile)

        return build

    async def aclose(self) -> None:
        self._closed = True
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.aclose()


class PooledRewardModelJudge:
    """A reward-model judge whose engine the pool loads on first use (the scorer builds backends synchronously)."""

    def __init__(self, profile: JudgeProfile, pool: RewardModelPool) -> None:
        if not profile.reward_model:
            raise JudgeUnavailable(f"judge {profile.name!r}: set `reward_model` (a name or a path)", field="judge")
        self.profile = profile
        self._ref = profile.reward_model
        self._pool = pool
        self._judge: RewardModelJudge | None = None

    async def score(self, sample: Sample, rubric: Rubric) -> JudgeOutcome:
        if self._judge is None:
            # The pool owns the engine (shared by every profile naming the same model) and closes it.
            self._judge = RewardModelJudge(self.profile, await self._pool.engine(self._ref))
        return await self._judge.score(sample, rubric)

    async def aclose(self) -> None:
        return None


# --- training data from the store -----------------------------------------------------------------------------


def record_of(axes: dict[str, int], content: dict[str, Any], sample_hash: str) -> LabelledRecord:
    messages = tuple((str(m["role"]), str(m["content"])) for m in content.get("messages", []))
    conversation = Conversation(
        messages=messages, reasoning=str(content.get("reasoning") or ""), response=str(content.get("response") or "")
    )
    return LabelledRecord(conversation=conversation, scores={k: (v,) for k, v in axes.items()}, id=sample_hash)


async def records_from_verdicts(
    sessions: async_sessionmaker[AsyncSession], rubric: Rubric, judges: Sequence[str] | None = None
) -> list[LabelledRecord]:
    """One record per stored complete verdict of ``rubric`` by ``judges`` (all judges when None); ok axes only.

    Verdicts of one sample by several judges stay separate records: training pools them into soft labels.
    """
    keys = set(rubric.axis_keys)
    records: list[LabelledRecord] = []
    async with sessions() as session:
        async for batch in VerdictRepository(session).iter_complete(rubric.content_hash, judges=judges):
            for verdict, content in batch:
                axes = {
                    key: axis.score
                    for key, axis in verdict.axes.items()
                    if key in keys and axis.status is AxisStatus.ok and axis.score is not None
                }
                if axes:
                    records.append(record_of(axes, content, verdict.sample_hash))
    return records
