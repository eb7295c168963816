"""Rubrics registered through any replica reach every replica: read from the store at start-up and then often.

Without this a replica kept the rubrics it saw at start-up plus its own registrations, so "latest" named one
version on the replica that took a POST and another elsewhere. Only hashes are read on each pass; bodies only
of rubrics this replica does not have. A stored rubric that no longer validates (stored before the schema's
bounds) or conflicts with a local file is logged and left out, never served.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.durability.outage import is_store_outage
from judge.store.rubrics_repository import RubricRepository
from rubrics.errors import RubricJudgeError
from rubrics.registry import RubricRegistry
from rubrics.schema import Rubric

log = logging.getLogger(__name__)


async def sync_stored_rubrics(sessions: async_sessionmaker[AsyncSession], registry: RubricRegistry) -> int:
    """Register stored rubrics this registry lacks; the number added."""
    async with sessions() as session:
        repo = RubricRepository(session)
        missing = [h for h in await repo.list_hashes() if registry.get_by_hash(h) is None]
        bodies = await repo.bodies_by_hash(missing) if missing else []
    added = 0
    for body in bodies:
        try:
            registry.register(Rubric.model_validate(body))
            added += 1
        except (ValidationError, RubricJudgeError) as exc:
            ref = f"{body.get('name')}@{body.get('version')}" if isinstance(body, dict) else "?"
            log.error("stored rubric %s is not served: %s", ref, str(exc).splitlines()[0])
    return added


async def keep_in_sync(sessions: async_sessionmaker[AsyncSession], registry: RubricRegistry, every_s: float) -> None:
    """Forever: every ``every_s`` seconds, pick up rubrics registered by other replicas."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await sync_stored_rubrics(sessions, registry)
        except Exception as exc:
            if not is_store_outage(exc):
                log.exception("rubric sync failed")
