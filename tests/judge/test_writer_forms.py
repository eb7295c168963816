"""What the writer puts in the cache and the store, from one serialisation of each verdict's axes."""

from __future__ import annotations

import orjson
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.cache import MemoryCache
from judge.store.models import VerdictRow
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import Verdict
from judge.writer import VerdictWriter
from tests.judge.store.factories import make_sample, make_verdict

_RATIONALE = "患者说“心口疼”，情绪焦虑；回答先安抚再给出就医指征。🙂"


async def test_cached_bytes_and_stored_rows_are_those_of_the_whole_verdict(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    cache = MemoryCache(100, 60)
    writer = VerdictWriter(db_sessions, cache)
    sample = make_sample()
    complete = make_verdict(sample, rationale=_RATIONALE)
    failed = make_verdict(sample, cache_key="f" * 64, complete=False, rationale=_RATIONALE)
    try:
        assert await writer.write(complete, sample)
        assert await writer.write(failed, sample)
    finally:
        await writer.aclose()

    cached = await cache.get_many([complete.cache_key, failed.cache_key])
    # Byte for byte what the cache held before (TypeAdapter(Verdict).dump_json); failed verdicts are not cached.
    assert cached == {complete.cache_key: TypeAdapter(Verdict).dump_json(complete)}
    assert _RATIONALE.encode() in cached[complete.cache_key]
    async with db_sessions() as session:
        repo = VerdictRepository(session)
        axes = {id_: stored for id_, stored in await session.execute(select(VerdictRow.id, VerdictRow.axes))}
        for verdict in (complete, failed):
            assert axes[verdict.id] == orjson.loads(verdict.model_dump_json(include={"axes"}))["axes"]
            loaded = await repo.get(verdict.id)
            assert loaded is not None
            assert loaded.model_dump(exclude={"created_at"}) == verdict.model_dump(exclude={"created_at"})
