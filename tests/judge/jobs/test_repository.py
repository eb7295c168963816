"""The SQL that makes jobs exactly-once: leases, fenced commits, expiry, release, cancel (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.jobs.process import ItemOutcome, invalid_outcome
from judge.jobs.repository import JobRepository, NewItem
from judge.jobs.schemas import ItemState

Sessions = async_sessionmaker[AsyncSession]
T = TypeVar("T")


async def tx(sessions: Sessions, work: Callable[[JobRepository], Awaitable[T]]) -> T:
    async with sessions() as session:
        result = await work(JobRepository(session))
        await session.commit()
        return result


async def new_job(sessions: Sessions, lines: int, chunk_size: int, *, invalid: frozenset[int] = frozenset()) -> str:
    async def create(repo: JobRepository) -> str:
        row = await repo.create(
            job_id="j" * 32, kind="filter", rubric_ref="prmed@1", rubric_hash="r" * 64, judge="loop",
            profile_hash="p" * 64, generator=None, options={}, source="upload",
        )  # fmt: skip
        for chunk, start in enumerate(range(1, lines + 1, chunk_size)):
            items = [
                NewItem(n, None, invalid_outcome(n, b"x", "坏行")) if n in invalid else NewItem(n, f'{{"n": {n}}}')
                for n in range(start, min(lines, start + chunk_size - 1) + 1)
            ]
            assert await repo.add_chunk(row.id, chunk, items)
        return row.id

    job_id = await tx(sessions, create)
    assert await tx(sessions, lambda repo: repo.finish_ingest(job_id)) == "running"
    return job_id


def outcomes(items: list[tuple[int, str]], state: ItemState = ItemState.dropped) -> list[ItemOutcome]:
    return [ItemOutcome(line, state, {"line": line, "outcome": state.value, "text": text}) for line, text in items]


async def test_a_chunk_has_one_holder_and_only_the_holder_commits(pg_sessions: Sessions) -> None:
    job_id = await new_job(pg_sessions, lines=10, chunk_size=5, invalid=frozenset({3}))
    claim = await tx(pg_sessions, lambda r: r.claim(job_id, 0, owner="A", task_id="t0", lease_s=0.2))
    assert claim is not None and (claim.first_line, claim.last_line, claim.attempts) == (1, 5, 1)
    assert await tx(pg_sessions, lambda r: r.claim(job_id, 0, owner="B", task_id="t1", lease_s=30)) is None
    items = await tx(pg_sessions, lambda r: r.pending_items(claim))
    assert [line for line, _ in items] == [1, 2, 4, 5]  # line 3 was invalid at ingest

    await asyncio.sleep(0.3)  # A's lease runs out (A is "dead")
    taken = await tx(pg_sessions, lambda r: r.claim(job_id, 0, owner="B", task_id="t1", lease_s=30))
    assert taken is not None and taken.attempts == 2
    assert not await tx(pg_sessions, lambda r: r.complete(claim, "A", outcomes(items)))  # fenced off
    assert await tx(pg_sessions, lambda r: r.complete(taken, "B", outcomes(items, ItemState.kept)))
    assert not await tx(pg_sessions, lambda r: r.complete(taken, "B", outcomes(items)))  # done already

    job = await tx(pg_sessions, lambda r: r.get(job_id))
    assert job is not None
    assert (job.total, job.kept, job.dropped, job.invalid, job.state) == (10, 4, 0, 1, "running")
    records = await tx(pg_sessions, lambda r: r.results(job_id, [ItemState.kept, ItemState.invalid]))
    assert [line for line, _ in records] == [1, 2, 3, 4, 5]
    assert orjson.loads(records[0][1]) == {"line": 1, "outcome": "kept", "text": '{"n": 1}'}


async def test_the_last_chunk_finishes_the_job(pg_sessions: Sessions) -> None:
    job_id = await new_job(pg_sessions, lines=4, chunk_size=2)
    for chunk in (0, 1):
        claim = await tx(pg_sessions, lambda r, c=chunk: r.claim(job_id, c, owner="A", task_id=f"t{c}", lease_s=30))  # type: ignore[misc]
        assert claim is not None
        items = await tx(pg_sessions, lambda r, c=claim: r.pending_items(c))  # type: ignore[misc]
        assert await tx(pg_sessions, lambda r, c=claim, i=items: r.complete(c, "A", outcomes(i)))  # type: ignore[misc]
    job = await tx(pg_sessions, lambda r: r.get(job_id))
    assert job is not None and job.state == "done" and job.finished_at is not None
    assert job.stats["outcomes"] == {"dropped": 4}


async def test_heartbeats_keep_leases_and_expiry_hands_chunks_back_once(pg_sessions: Sessions) -> None:
    job_id = await new_job(pg_sessions, lines=6, chunk_size=3)
    first = await tx(pg_sessions, lambda r: r.claim(job_id, 0, owner="A", task_id="a0", lease_s=0.2))
    second = await tx(pg_sessions, lambda r: r.claim(job_id, 1, owner="B", task_id="b1", lease_s=0.2))
    assert first is not None and second is not None
    assert await tx(pg_sessions, lambda r: r.heartbeat("A", 30, [(job_id, 0), (job_id, 1)])) == 1  # 1 is B's
    assert await tx(pg_sessions, lambda r: r.heartbeat("B", 30, [])) == 0  # B's task is gone: no beat
    await asyncio.sleep(0.3)
    expired, again = await asyncio.gather(
        tx(pg_sessions, lambda r: r.expire_leases()), tx(pg_sessions, lambda r: r.expire_leases())
    )
    refs = expired + again
    assert [(ref.chunk, ref.attempts, ref.task_id) for ref in refs] == [(1, 1, "b1")]  # B's only, once
    assert [ref.chunk for ref in await tx(pg_sessions, lambda r: r.pending_chunks())] == [1]
    assert await tx(pg_sessions, lambda r: r.claim(job_id, 0, owner="C", task_id="c0", lease_s=30)) is None


async def test_release_cancel_and_giving_up(pg_sessions: Sessions) -> None:
    job_id = await new_job(pg_sessions, lines=4, chunk_size=2)
    claim = await tx(pg_sessions, lambda r: r.claim(job_id, 0, owner="A", task_id="a", lease_s=30))
    assert claim is not None
    assert await tx(pg_sessions, lambda r: r.release(claim, "A", "ValueError: 坏"))
    retry = await tx(pg_sessions, lambda r: r.claim(job_id, 0, owner="B", task_id="b", lease_s=30))
    assert retry is not None and retry.attempts == 2 and retry.error == "ValueError: 坏"
    items = await tx(pg_sessions, lambda r: r.pending_items(retry))
    gave_up: list[Any] = outcomes(items, ItemState.failed)
    assert await tx(pg_sessions, lambda r: r.fail_chunk(retry, "B", gave_up, "given up"))
    cancelled = await tx(pg_sessions, lambda r: r.cancel(job_id))
    assert cancelled is not None and cancelled.state == "cancelled" and cancelled.failed == 2
    assert await tx(pg_sessions, lambda r: r.claim(job_id, 1, owner="B", task_id="b1", lease_s=30)) is None
    assert await tx(pg_sessions, lambda r: r.pending_chunks()) == []
    assert (await tx(pg_sessions, lambda r: r.cancel(job_id))).state == "cancelled"  # type: ignore[union-attr]


async def test_ingest_stops_for_a_cancelled_job_and_stale_ingests_are_found(pg_sessions: Sessions) -> None:
    async def create(repo: JobRepository) -> str:
        row = await repo.create(
            job_id="k" * 32, kind="filter", rubric_ref="prmed@1", rubric_hash="r" * 64, judge="loop",
            profile_hash="p" * 64, generator=None, options={}, source="upload",
        )  # fmt: skip
        return row.id

    job_id = await tx(pg_sessions, create)
    assert await tx(pg_sessions, lambda r: r.stale_ingests(0.0)) == [job_id]
    assert await tx(pg_sessions, lambda r: r.stale_ingests(600.0)) == []
    await tx(pg_sessions, lambda r: r.cancel(job_id))
    assert not await tx(pg_sessions, lambda r: r.add_chunk(job_id, 0, [NewItem(1, "{}")]))
    assert not await tx(pg_sessions, lambda r: r.touch(job_id))
