"""Workers survive a Redis outage: a PRIVATE redis-server is killed mid-job and restarted empty; the worker keeps
running, keeps its leases (they live in PostgreSQL), and the job finishes with no manual restart. A job created
while Redis is down is a 503 with nothing left half-made."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from judge.jobs.errors import JobQueueUnavailable
from judge.jobs.schemas import JobOptions, JobSpec
from judge.jobs.service import JobsService
from judge.jobs.worker import WorkerConfig, build_worker, close_worker
from judge.runtime import Runtime
from judge.settings import Settings
from tests.judge.jobs.conftest import sample_line
from tests.support.openai_server import OpenAIServer
from tests.support.private_services import PrivateRedis


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    directory = Path(tempfile.mkdtemp(prefix="rj-private-redis-"))
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def outage_settings(job_settings: Settings, private_redis: PrivateRedis) -> Settings:
    return job_settings.model_copy(update={"redis_url": private_redis.url})


async def _lines(n: int) -> AsyncIterator[bytes]:
    yield b"".join(orjson.dumps(sample_line(i)) + b"\n" for i in range(n))


async def test_a_worker_outlives_a_redis_outage_and_finishes_the_job(
    outage_settings: Settings, private_redis: PrivateRedis, openai_server: OpenAIServer
) -> None:
    openai_server.latency_s = 0.2
    config = WorkerConfig(lease_s=5, poll_delay_s=0.02, queue_check_s=0.5, redis_backoff_max_s=0.5)
    async with await Runtime.open(outage_settings) as runtime:
        service = JobsService(runtime)
        worker = build_worker(outage_settings, config, handle_signals=False)
        task = asyncio.create_task(worker.async_run())
        try:
            spec = JobSpec(judge="loop", options=JobOptions(chunk_size=4))
            job_id = str((await service.create_from_stream(spec, _lines(24)))["id"])
            async with asyncio.timeout(30):
                while (await service.get(job_id))["counts"]["done"] == 0:
                    await asyncio.sleep(0.05)
            private_redis.stop()  # kill -9: the queue and everything in Redis is gone
            await asyncio.sleep(2.0)
            assert not task.done(), "the worker exited on the Redis outage"
            private_redis.start()  # back, and empty
            async with asyncio.timeout(60):
                while (await service.get(job_id))["state"] != "done":
                    assert not task.done(), "the worker exited"
                    await asyncio.sleep(0.1)
            counts = (await service.get(job_id))["counts"]
            assert counts["done"] == 24
            assert counts["failed"] == 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await close_worker(worker)
            await service.aclose()
            openai_server.latency_s = 0.0


async def test_creating_a_job_while_redis_is_down_is_a_503_that_makes_nothing(
    outage_settings: Settings, private_redis: PrivateRedis
) -> None:
    async with await Runtime.open(outage_settings) as runtime:
        service = JobsService(runtime)
        try:
            spec = JobSpec(judge="loop")
            await service.create_from_stream(spec, _lines(2))  # connects the queue while Redis is up
            before = await service.list(state=None, limit=500, offset=0)
            private_redis.stop()
            with pytest.raises(JobQueueUnavailable) as info:
                await service.create_from_stream(spec, _lines(2))
            assert info.value.status_code == 503
            private_redis.start()
            after = await service.list(state=None, limit=500, offset=0)
            assert len(after) == len(before)
        finally:
            await service.aclose()
