"""The verdict cache: Redis when configured, else an in-process LRU. Only a cache: losing it loses no data."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from judge.metrics import CACHE_ERRORS
from judge.settings import Settings

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@runtime_checkable
class VerdictCache(Protocol):
    """Serialised verdicts by cache key. Implementations never raise for a cache-side failure."""

    kind: str

    async def get_many(self, keys: list[str]) -> dict[str, bytes]:
        """The values found; missing (or unreachable) keys are simply absent."""
        ...

    async def set_many(self, items: dict[str, bytes]) -> None: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


class MemoryCache:
    """An LRU with a TTL, for one process: O(1) get and set."""

    kind = "memory"

    def __init__(self, max_items: int, ttl_s: float, clock: Clock = time.monotonic) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._max_items = max_items
        self._ttl_s = ttl_s
        self._clock = clock
        # key -> (expires_at, value); order is recency, least recently used first.
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    async def get_many(self, keys: list[str]) -> dict[str, bytes]:
        now = self._clock()
        found: dict[str, bytes] = {}
        for key in keys:
            entry = self._items.get(key)
            if entry is None:
                continue
            expires_at, value = entry
            if expires_at <= now:
                del self._items[key]
                continue
            self._items.move_to_end(key)
            found[key] = value
        return found

    async def set_many(self, items: dict[str, bytes]) -> None:
        expires_at = self._clock() + self._ttl_s
        for key, value in items.items():
            self._items[key] = (expires_at, value)
            self._items.move_to_end(key)
        while len(self._items) > self._max_items:
            self._items.popitem(last=False)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._items.clear()


# Every key of a batch set in one command: the client then writes one command and reads one reply, where a pipeline
# of SET EX commands cost ~15 µs of client CPU per key (the writer caches every complete verdict through this).
_SET_ALL = """
for i, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""


class RedisCache:
    """Redis (MGET / one scripted batch of SET EX) that degrades to a no-op while Redis is unreachable.

    A failure is logged once per outage (and its end once), counted in ``rj_cache_errors_total``, and opens a
    short cool-down during which calls skip Redis at once, so a black-holed server costs one timeout per
    ``retry_after_s`` rather than one per request.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "rj:",
        ttl_s: int = 7 * 24 * 3600,
        *,
        socket_timeout_s: float = 0.5,
        connect_timeout_s: float = 0.5,
        retry_after_s: float = 1.0,
        max_connections: int = 64,
        clock: Clock = time.monotonic,
    ) -> None:
        self._prefix = f"{prefix}verdict:"
        self._ttl_s = ttl_s
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._down_until = 0.0
        self._healthy = True
        # Connects lazily. One retry on ConnectionError only: it replaces a pooled connection the server closed
        # (idle timeout, restart) without doubling the wait on a timeout.
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry_on_timeout=False,
            retry_on_error=[RedisConnectionError],
            max_connections=max_connections,
        )
        # None once the server refused scripts (an ACL, a proxy without EVAL): pipelined SETs instead.
        self._set_all: AsyncScript | None = self._redis.register_script(_SET_ALL)

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _skip(self) -> bool:
        return not self._healthy and self._clock() < self._down_until

    def _failed(self, operation: str, exc: Exception) -> None:
        CACHE_ERRORS.inc()
        self._down_until = self._clock() + self._retry_after_s
        if self._healthy:
            # Flag and log in one step (no await in between): concurrent failures log once per outage.
            self._healthy = False
            logger.warning("redis cache unavailable (%s: %s); scoring goes on without it", operation, exc)

    def _succeeded(self) -> None:
        if not self._healthy:
            self._healthy = True
            logger.info("redis cache recovered")

    async def get_many(self, keys: list[str]) -> dict[str, bytes]:
        if not keys or self._skip():
            return {}
        try:
            values = await self._redis.mget([self._key(k) for k in keys])
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            return {}
        self._succeeded()
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    async def set_many(self, items: dict[str, bytes]) -> None:
        if not items or self._skip():
            return
        try:
            await self._set(items)
        except (RedisError, OSError) as exc:
            self._failed("set", exc)
            return
        self._succeeded()

    async def _set(self, items: dict[str, bytes]) -> None:
        keys = [self._key(key) for key in items]
        if self._set_all is not None:
            try:
                # The script is sent once (EVALSHA after; the client reloads it after a server restart).
                await self._set_all(keys=keys, args=[self._ttl_s, *items.values()])
                return
            except ResponseError as exc:
                logger.warning("redis refused the cache's SET script (%s); using pipelined SETs", exc)
                self._set_all = None
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, value in zip(keys, items.values(), strict=True):
                pipe.set(key, value, ex=self._ttl_s)
            await pipe.execute()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_cache(settings: Settings) -> VerdictCache:
    """Redis if ``RJ_REDIS_URL`` is set, else the in-process LRU. Connects on first use, not here."""
    if settings.redis_url:
        return RedisCache(settings.redis_url, prefix=settings.redis_prefix, ttl_s=settings.cache_ttl_s)
    return MemoryCache(settings.cache_max_items, settings.cache_ttl_s)
