"""The verdict cache: in-process LRU/TTL, Redis round trips, and scoring on through a Redis outage."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.exceptions import ResponseError

from judge.cache import MemoryCache, RedisCache, VerdictCache, build_cache
from judge.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- MemoryCache -----------------------------------------------------------------------------------------------


async def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_items=2, ttl_s=60)
    await cache.set_many({"a": b"1", "b": b"2"})
    assert await cache.get_many(["a"]) == {"a": b"1"}  # "a" is now the most recent
    await cache.set_many({"c": b"3"})
    assert await cache.get_many(["a", "b", "c"]) == {"a": b"1", "c": b"3"}
    assert len(cache) == 2


async def test_memory_cache_overwrite_refreshes_value_and_recency() -> None:
    cache = MemoryCache(max_items=2, ttl_s=60)
    await cache.set_many({"a": b"1", "b": b"2"})
    await cache.set_many({"a": b"new"})
    await cache.set_many({"c": b"3"})
    assert await cache.get_many(["a", "b", "c"]) == {"a": b"new", "c": b"3"}


async def test_memory_cache_expires_entries_after_the_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_items=10, ttl_s=30, clock=clock)
    await cache.set_many({"a": b"1"})
    clock.now += 20
    await cache.set_many({"b": b"2"})
    clock.now += 9.9
    assert await cache.get_many(["a", "b"]) == {"a": b"1", "b": b"2"}
    clock.now += 0.1
    assert await cache.get_many(["a", "b"]) == {"b": b"2"}
    assert len(cache) == 1  # the expired entry is gone, not just hidden
    clock.now += 20
    assert await cache.get_many(["b"]) == {}


async def test_memory_cache_is_a_verdict_cache() -> None:
    cache = MemoryCache(max_items=1, ttl_s=1)
    assert isinstance(cache, VerdictCache)
    assert cache.kind == "memory"
    assert await cache.ping()
    assert await cache.get_many([]) == {}
    await cache.aclose()


# --- RedisCache on the shared Redis ----------------------------------------------------------------------------


async def test_redis_round_trip(redis_url: str, redis_prefix: str, redis_client: aioredis.Redis) -> None:
    cache = RedisCache(redis_url, prefix=redis_prefix, ttl_s=120)
    try:
        assert isinstance(cache, VerdictCache)
        assert cache.kind == "redis"
        assert await cache.ping()
        verdict = '{"axes": {"safety": {"rationale": "提示了红旗症状"}}}'.encode()
        await cache.set_many({"k1": verdict, "k2": b"\x00\xff"})
        await cache.set_many({})
        assert await cache.get_many(["k1", "missing", "k2"]) == {"k1": verdict, "k2": b"\x00\xff"}
        assert await cache.get_many([]) == {}
        keys = sorted([k async for k in redis_client.scan_iter(match=f"{redis_prefix}*")])
        assert keys == [f"{redis_prefix}verdict:k1".encode(), f"{redis_prefix}verdict:k2".encode()]
        assert 100 < await redis_client.ttl(keys[0]) <= 120
    finally:
        await cache.aclose()


async def test_redis_sets_a_whole_batch_in_one_command(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(redis_url, prefix=redis_prefix, ttl_s=120)
    items = {f"k{i}": f'{{"rationale": "第{i}条理由"}}'.encode() + bytes([i % 256]) for i in range(600)}
    sent: list[object] = []
    execute = cache._redis.execute_command

    async def counted(*args: object, **options: object) -> object:
        sent.append(args[0])
        return await execute(*args, **options)

    def no_pipeline(*_: object, **__: object) -> object:
        raise AssertionError("a batch of SETs went through a pipeline")

    monkeypatch.setattr(cache._redis, "execute_command", counted)
    monkeypatch.setattr(cache._redis, "pipeline", no_pipeline)
    try:
        await cache.set_many(items)
        # The script for the 600 keys: one EVALSHA (two, around a SCRIPT LOAD, if the server did not have it yet).
        assert set(sent) <= {"EVALSHA", "SCRIPT LOAD"} and 1 <= sent.count("EVALSHA") <= 2
        assert await cache.get_many(list(items)) == items
        ttls = [await redis_client.ttl(f"{redis_prefix}verdict:{key}") for key in ("k0", "k599")]
        assert all(100 < ttl <= 120 for ttl in ttls)
        # A server that lost its scripts (a restart, SCRIPT FLUSH) gets the script again: nothing is skipped.
        assert cache._set_all is not None
        cache._set_all.sha = "0" * 40
        await cache.set_many({"again": b"1"})
        assert await cache.get_many(["again"]) == {"again": b"1"}
        assert cache.healthy
    finally:
        await cache.aclose()


async def test_redis_refusing_scripts_gets_pipelined_sets(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(redis_url, prefix=redis_prefix, ttl_s=120)

    async def refused(**_: object) -> object:
        raise ResponseError("NOPERM this user has no permissions to run the 'evalsha' command")

    cache._set_all = refused  # type: ignore[assignment]
    try:
        with caplog.at_level(logging.WARNING, logger="judge.cache"):
            await cache.set_many({"k1": b"1", "k2": b"2"})
            await cache.set_many({"k3": b"3"})
        assert await cache.get_many(["k1", "k2", "k3"]) == {"k1": b"1", "k2": b"2", "k3": b"3"}
        assert 100 < await redis_client.ttl(f"{redis_prefix}verdict:k3") <= 120
        assert cache._set_all is None and cache.healthy
        assert sum("refused the cache's SET script" in r.getMessage() for r in caplog.records) == 1
    finally:
        await cache.aclose()


def test_build_cache_follows_settings() -> None:
    memory = build_cache(Settings(redis_url=None, cache_max_items=5))
    assert isinstance(memory, MemoryCache)
    redis_cache = build_cache(Settings(redis_url="redis://127.0.0.1:6379/0", redis_prefix="x:"))
    assert isinstance(redis_cache, RedisCache)
    asyncio.run(redis_cache.aclose())  # nothing connected: closing is all there is


# --- Redis going away -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on a port of its own, with no persistence."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not come up on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(_free_port(), tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)  # in case a test left it stopped
    server.kill()


def _cache_errors() -> float:
    return REGISTRY.get_sample_value("rj_cache_errors_total") or 0.0


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "judge.cache" and r.levelno == logging.WARNING]


async def test_scoring_goes_on_when_redis_dies_and_the_cache_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    cache = RedisCache(f"redis://127.0.0.1:{redis_server.port}/0", prefix="t:", ttl_s=60, clock=clock)
    caplog.set_level(logging.INFO, logger="judge.cache")
    try:
        await cache.set_many({"a": b"1"})
        assert await cache.get_many(["a"]) == {"a": b"1"}

        redis_server.kill()
        errors_before = _cache_errors()
        for _ in range(3):
            assert await cache.get_many(["a", "b"]) == {}
            await cache.set_many({"b": b"2"})
            clock.now += 5  # past the cool-down: every call really tries Redis
        # Concurrent callers during the outage: still nothing raised, still one warning.
        assert await asyncio.gather(*(cache.get_many(["a"]) for _ in range(5))) == [{}] * 5
        assert not cache.healthy
        assert len(_warnings(caplog)) == 1
        assert "unavailable" in _warnings(caplog)[0]
        assert _cache_errors() - errors_before >= 6
        assert not await cache.ping()

        redis_server.start()  # same port, empty (no persistence)
        clock.now += 5
        assert await cache.get_many(["a"]) == {}
        await cache.set_many({"c": b"3"})
        assert await cache.get_many(["c"]) == {"c": b"3"}
        assert cache.healthy
        assert len(_warnings(caplog)) == 1
        assert any(r.getMessage() == "redis cache recovered" for r in caplog.records)
    finally:
        await cache.aclose()


async def test_a_hung_redis_costs_one_short_timeout_then_is_skipped(redis_server: RedisServer) -> None:
    clock = FakeClock()
    cache = RedisCache(f"redis://127.0.0.1:{redis_server.port}/0", prefix="t:", ttl_s=60, clock=clock)
    try:
        await cache.set_many({"a": b"1"})
        assert redis_server.process is not None
        # SIGSTOP: the port still accepts connections but nothing answers (a black-holed server).
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        started = time.monotonic()
        assert await cache.get_many(["a"]) == {}
        assert time.monotonic() - started < 2.0
        started = time.monotonic()
        await cache.set_many({"b": b"2"})  # within the cool-down: skipped at once
        assert await cache.get_many(["a"]) == {}
        assert time.monotonic() - started < 0.05
        os.kill(redis_server.process.pid, signal.SIGCONT)
        clock.now += 5
        assert await cache.get_many(["a"]) == {"a": b"1"}
    finally:
        await cache.aclose()
