"""OpenRLHF ``reward_func.py`` backed by a rubric-judge server: ``--reward.remote_url /path/to/this/file.py``.

OpenRLHF loads this file by path and calls ``reward_func(queries, prompts, labels)`` in a worker thread, one
rollout at a time. It forwards the call to the server's ``POST /get_reward`` (the same answer an OpenRLHF HTTP
reward server gives: ``rewards``, ``scores`` on [0, 1], ``extra_logs`` with per-axis scores and ``judge_failed``).

Self-contained on purpose (standard library and httpx only), so the file can be copied to a trainer machine
that does not have rubric-judge installed. Settings (environment):

    RJ_REWARD_URL        server base URL (default http://127.0.0.1:8000)
    RJ_REWARD_JUDGE      judge profile (default: the server's RJ_REWARD_JUDGE)
    RJ_REWARD_RUBRIC     rubric (default: the server's RJ_REWARD_RUBRIC)
    RJ_API_KEY           bearer key, when the server requires one
    RJ_REWARD_TIMEOUT_S  per attempt (default 180, as OpenRLHF's own client)
    RJ_REWARD_RETRIES    retries after the first attempt (default 5); only connection errors, timeouts,
                         408, 429 and 5xx are retried, honouring Retry-After
    RJ_REWARD_FALLBACK   the reward when the server cannot be reached at all (default 0.0)
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from typing import Any

import httpx

_lock = threading.Lock()
_client: httpx.Client | None = None
# extra_logs keys of the last good answer: an unreachable server then still answers with the same keys.
_log_keys: list[str] = []


def _settings() -> dict[str, Any]:
    return {
        "url": os.environ.get("RJ_REWARD_URL", "http://127.0.0.1:8000").rstrip("/"),
        "judge": os.environ.get("RJ_REWARD_JUDGE") or None,
        "rubric": os.environ.get("RJ_REWARD_RUBRIC") or None,
        "api_key": os.environ.get("RJ_API_KEY") or None,
        "timeout_s": float(os.environ.get("RJ_REWARD_TIMEOUT_S", "180")),
        "retries": int(os.environ.get("RJ_REWARD_RETRIES", "5")),
        "fallback": float(os.environ.get("RJ_REWARD_FALLBACK", "0")),
    }


def _shared_client(timeout_s: float) -> httpx.Client:
    """One pooled client for every OpenRLHF worker thread of this process (httpx.Client is thread-safe)."""
    global _client
    with _lock:
        if _client is None:
            limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
            _client = httpx.Client(timeout=timeout_s, limits=limits)
        return _client


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status >= 500 or status in (408, 429)
    return isinstance(exc, httpx.TransportError)


def _wait_s(exc: BaseException, attempt: int) -> float:
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            return max(0.0, float(exc.response.headers.get("retry-after", "")))
        except ValueError:
            pass
    return random.uniform(0.0, min(30.0, 0.5 * 2**attempt))


def _jsonable(values: Any, n: int) -> list[Any]:
    """Prompts or labels as JSON values (OpenRLHF may pass None, strings, numbers or tensors)."""
    if values is None:
        return [None] * n
    out = []
    for value in list(values):
        if value is None or isinstance(value, str | int | float | bool):
            out.append(value)
        elif hasattr(value, "tolist"):
            out.append(value.tolist())
        else:
            out.append(str(value))
    return out


def post_rewards(queries: list[str], prompts: Any, labels: Any) -> dict[str, Any]:
    """POST /get_reward with retries; raises the last error when every attempt failed or a 4xx came back."""
    settings = _settings()
    client = _shared_client(settings["timeout_s"])
    params = {name: settings[name] for name in ("judge", "rubric") if settings[name]}
    headers = {"authorization": f"Bearer {settings['api_key']}"} if settings["api_key"] else {}
    n = len(queries)
    body = {"query": list(queries), "prompts": _jsonable(prompts, n), "labels": _jsonable(labels, n)}
    attempt = 0
    while True:
        try:
            response = client.post(f"{settings['url']}/get_reward", json=body, params=params, headers=headers)
            response.raise_for_status()
            answer: dict[str, Any] = response.json()
            return answer
        except (httpx.HTTPStatusError, httpx.TransportError) as exc:
            if not _retryable(exc) or attempt >= settings["retries"]:
                raise
            time.sleep(_wait_s(exc, attempt))
            attempt += 1


def reward_func(queries: list[str], prompts: list[Any], labels: list[Any], **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's reward function: ``{"rewards", "scores", "extra_logs"}``, lists in input order."""
    global _log_keys
    try:
        answer = post_rewards(queries, prompts, labels)
    except (httpx.HTTPStatusError, httpx.TransportError):
        if not _log_keys:
            raise  # no answer ever came back: there is nothing consistent to log
        fallback = _settings()["fallback"]
        n = len(queries)
        logs = {key: [0.0] * n for key in _log_keys}
        logs["judge_failed"] = [1.0] * n
        score = min(max(fallback, 0.0), 1.0) if math.isfinite(fallback) else 0.0
        return {"rewards": [fallback] * n, "scores": [score] * n, "extra_logs": logs}
    _log_keys = list(answer.get("extra_logs", {}))
    return answer
