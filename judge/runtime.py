"""The engine's long-lived resources, built from settings and closed in reverse order.

The API's lifespan and every CLI command open one ``Runtime``; nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from judge.backends.factory import build_backend
from judge.cache import VerdictCache, build_cache
from judge.durability.spool import Spool
from judge.integrity.turn_markers import warm_up as warm_turn_markers
from judge.profiles import ProfileRegistry
from judge.reward_models import RewardModelPool
from judge.rubric_sync import keep_in_sync, sync_stored_rubrics
from judge.scorer import BackendFactory, Scorer
from judge.settings import Settings
from judge.store.database import create_engine, make_session_factory
from judge.store.schema import require_schema as check_schema
from judge.writer import VerdictWriter
from rubrics.registry import RubricRegistry

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: VerdictCache
    rubrics: RubricRegistry
    profiles: ProfileRegistry
    scorer: Scorer
    _stack: AsyncExitStack
    # Local reward-model engines (loaded on first use, torch imported only then); closed after the scorer.
    reward_models: RewardModelPool

    @classmethod
    async def open(
        cls, settings: Settings, *, backend_factory: BackendFactory | None = None, require_schema: bool = True
    ) -> Runtime:
        """Open every resource. ``require_schema``: a reachable database without the current schema raises
        ``SchemaNotReady`` (the CLI fails fast); the API passes False and reports it on ``/readyz``."""
        stack = AsyncExitStack()
        try:
            engine = create_engine(settings.database_url, echo=settings.database_echo, timeout_s=settings.db_timeout_s)
            stack.push_async_callback(engine.dispose)
            if require_schema:
                await check_schema(engine)
            sessions = make_session_factory(engine)
            cache = build_cache(settings)
            stack.push_async_callback(cache.aclose)
            rubrics = RubricRegistry(user_dir=settings.rubrics_dir)
            await _load_stored_rubrics(sessions, rubrics)
            # "latest" must name the same version on every replica: pick up other replicas' registrations.
            sync = asyncio.create_task(keep_in_sync(sessions, rubrics, settings.rubric_refresh_s), name="rubric-sync")
            stack.push_async_callback(_cancel, sync)
            profiles = ProfileRegistry.from_file(settings.judges_file)
            reward_models = RewardModelPool(sessions)
            stack.push_async_callback(reward_models.aclose)
            factory = reward_models.backend_factory(backend_factory or build_backend)
            writer = VerdictWriter(
                sessions,
                cache,
                spool=Spool(settings.spool_dir, settings.database_url),
                buffer_max=settings.write_buffer_max,
                wait_s=settings.write_wait_s,
                linger_s=settings.write_linger_ms / 1000,
                flush_timeout_s=settings.write_flush_timeout_s,
            )
            scorer = Scorer(
                cache=cache, sessions=sessions, backend_factory=factory, writer=writer, grace_s=settings.judge_grace_s
            )
            stack.push_async_callback(scorer.aclose)
            # The turn-marker check's Unicode tables (~0.1 s) are built here, not inside the first request.
            warm_turn_markers()
            # Verdicts spooled by an earlier run (an outage, a SIGTERM while the store was down) go in now.
            writer.start()
        except BaseException:
            await stack.aclose()
            raise
        return cls(settings, engine, sessions, cache, rubrics, profiles, scorer, stack, reward_models)

    async def aclose(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _load_stored_rubrics(sessions: async_sessionmaker[AsyncSession], registry: RubricRegistry) -> None:
    """Rubrics registered through the API live in the database; bring them back at start-up."""
    try:
        await sync_stored_rubrics(sessions, registry)
    except Exception as exc:
        # An unmigrated database still serves the built-in rubrics; /readyz reports the problem.
        log.warning("could not load stored rubrics (%s); did you run `rubric-judge migrate`?", exc)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
