"""The adapters' HTTP client: one pooled ``httpx.AsyncClient`` per process and event loop, retrying only what is
worth retrying (connection failures, timeouts, 408, 429 and 5xx, honouring ``Retry-After``); other 4xx fail at once.
"""

from __future__ import annotations

import asyncio
import os
import random
import weakref
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

RETRY_STATUS = frozenset({408, 429})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


class RewardServerError(RuntimeError):
    """The reward server answered with an error that retrying cannot fix (or every retry failed)."""


@dataclass(frozen=True)
class ClientConfig:
    """Where the server is and how to talk to it; adapters read defaults from ``RJ_REWARD_*`` variables."""

    base_url: str
    api_key: str | None = None
    # A whole reward call; the server answers before its own deadline (RJ_REWARD_DEADLINE_S, 150 s).
    timeout_s: float = 180.0
    max_retries: int = 5
    max_connections: int = 256

    @classmethod
    def from_env(cls, **overrides: Any) -> ClientConfig:
        """``RJ_REWARD_URL``, ``RJ_API_KEY``, ``RJ_REWARD_TIMEOUT_S``, ``RJ_REWARD_RETRIES``; keyword overrides win."""
        values: dict[str, Any] = {
            "base_url": os.environ.get("RJ_REWARD_URL", "http://127.0.0.1:8000"),
            "api_key": os.environ.get("RJ_API_KEY") or None,
            "timeout_s": float(os.environ.get("RJ_REWARD_TIMEOUT_S", "180")),
            "max_retries": int(os.environ.get("RJ_REWARD_RETRIES", "5")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def is_retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 408, 429 and 5xx: the same request may well succeed later."""
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status >= 500 or status in RETRY_STATUS
    return isinstance(exc, httpx.TransportError)


def retry_wait_s(exc: BaseException | None, attempt: int) -> float:
    """The server's ``Retry-After`` (seconds), else full-jitter exponential backoff."""
    if isinstance(exc, httpx.HTTPStatusError):
        value = exc.response.headers.get("retry-after")
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
    return random.uniform(0.0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1)))


def _wait(state: RetryCallState) -> float:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None and outcome.failed else None
    return retry_wait_s(exc, state.attempt_number)


class RewardClient:
    """POSTs JSON to the reward server with pooling, a timeout and retries."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        headers = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        self._http = httpx.AsyncClient(
            base_url=config.base_url, timeout=config.timeout_s, limits=limits, headers=headers
        )
        # Attempts made, retries included (for tests and logs).
        self.attempts = 0

    async def post(self, path: str, body: Any, params: dict[str, str] | None = None) -> Any:
        """The decoded JSON answer; raises ``RewardServerError`` for a 4xx or when retries run out."""

        async def attempt() -> Any:
            self.attempts += 1
            response = await self._http.post(path, json=body, params=params)
            response.raise_for_status()
            return response.json()

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=_wait,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except httpx.HTTPStatusError as exc:
            raise RewardServerError(
                f"reward server answered HTTP {exc.response.status_code} for {path}: {exc.response.text[:500]}"
            ) from exc
        except httpx.TransportError as exc:
            raise RewardServerError(f"cannot reach the reward server at {self.config.base_url}: {exc!r}") from exc

    async def get(self, path: str) -> Any:
        response = await self._http.get(path)
        if response.is_error:
            raise RewardServerError(f"reward server answered HTTP {response.status_code} for {path}")
        return response.json()

    async def aclose(self) -> None:
        await self._http.aclose()


# One client per event loop (an AsyncClient's connections belong to the loop that opened them), per config.
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ClientConfig, RewardClient]] = (
    weakref.WeakKeyDictionary()
)


def shared_client(config: ClientConfig) -> RewardClient:
    """This process's client for ``config`` on the running event loop."""
    per_loop = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(config)
    if client is None:
        client = per_loop[config] = RewardClient(config)
    return client


async def close_shared_clients() -> None:
    """Close this event loop's shared clients (at shutdown; the next call opens new ones)."""
    for client in _CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()
