"""Faults under load through the HTTP app: a PRIVATE PostgreSQL cluster stopped mid-load, then a shutdown while it
is down. Every answered verdict id must be in the store once it is back (docs/reliability.md). Bounded: a few
hundred one-sample requests, outages of seconds, every wait with a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from api.app import create_app
from judge.settings import Settings
from judge.store.database import create_engine
from judge.store.models import VerdictRow
from tests.api.conftest import running
from tests.api.samples import sample, score_body
from tests.support.private_services import PrivatePostgres, migrated_private_postgres


@pytest.fixture(scope="module")
async def private_pg() -> AsyncIterator[PrivatePostgres]:
    async with migrated_private_postgres() as cluster:
        yield cluster


async def _stored(url: str, ids: set[str]) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(VerdictRow.id).where(VerdictRow.id.in_(list(ids))))
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def _load(client: httpx.AsyncClient, n: int, concurrency: int, tag: str) -> tuple[list[str], int, int]:
    """n one-sample requests; (answered verdict ids, non-200 answers, answers with pending writes)."""
    ids: list[str] = []
    errors = pending = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def client_loop() -> None:
        nonlocal errors, pending
        while not queue.empty():
            i = queue.get_nowait()
            body = score_body(sample(i, response=f"{tag}：胸痛伴出汗请立即就医（{i}）。"))
            resp = await client.post("/v1/score", json=body)
            if resp.status_code != 200:
                errors += 1
                continue
            payload = resp.json()
            pending += payload["usage"]["pending_writes"] > 0
            ids.extend(r["verdict_id"] for r in payload["results"] if r["verdict_id"])

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return ids, errors, pending


async def test_postgres_stopped_mid_load_then_a_shutdown_while_down_loses_no_verdict(
    private_pg: PrivatePostgres, judges_file: Path, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=private_pg.url,
        judges_file=judges_file,
        spool_dir=tmp_path / "spool",
        write_wait_s=1.0,
        write_flush_timeout_s=0.5,
        _env_file=None,  # type: ignore[call-arg]
    )

    async def outage() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(private_pg.stop, "immediate")
        await asyncio.sleep(3.0)
        await asyncio.to_thread(private_pg.start)

    app = create_app(settings)
    async with running(app) as client:
        (ids, errors, pending), _ = await asyncio.wait_for(
            asyncio.gather(_load(client, 240, 16, "负载"), outage()), timeout=120
        )
        assert errors == 0
        assert pending > 0, "the outage should have left some answers pending"
        writer = app.state.runtime.scorer.writer
        assert await writer.settled(timeout=60)
        # Now the store goes down again and the process is stopped (SIGTERM: the lifespan closes) mid-batch.
        await asyncio.to_thread(private_pg.stop, "immediate")
        late, errors, _ = await _load(client, 30, 8, "停机")
        assert errors == 0
    assert list((tmp_path / "spool").glob("verdicts-*.jsonl")), "the shutdown should have spooled the buffer"
    await asyncio.to_thread(private_pg.start)
    restarted = create_app(settings)
    async with running(restarted):
        assert await restarted.state.runtime.scorer.writer.settled(timeout=60)
    answered = set(ids) | set(late)
    assert len(answered) == 270
    assert await _stored(private_pg.url, answered) == answered
