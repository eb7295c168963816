"""Auth, health, readiness, metrics, and scoring on while Redis is gone."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from tests.api.samples import sample, score_body
from tests.support.openai_server import OpenAIServer


def _dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_api_keys_guard_every_v1_route_but_not_health(make_client: Any) -> None:
    async with make_client(api_keys=SecretStr("key-一,key-two")) as c:
        assert (await c.get("/v1/rubrics")).status_code == 401
        assert (await c.get("/v1/rubrics", headers={"authorization": "Bearer wrong"})).status_code == 401
        assert (await c.post("/v1/score", json=score_body(sample()))).status_code == 401
        ok = await c.get("/v1/rubrics", headers={"authorization": "Bearer key-two"})
        assert ok.status_code == 200
        assert (await c.get("/healthz")).status_code == 200


async def test_readyz_checks_the_database_and_redis(make_client: Any, redis_url: str) -> None:
    async with make_client(redis_url=redis_url) as c:
        resp = await c.get("/readyz")
        assert resp.status_code == 200
        assert resp.json()["checks"] == {"database": True, "schema": True, "redis": True}
    async with make_client(redis_url=_dead_redis_url()) as c:
        resp = await c.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["checks"]["redis"] is False


async def test_readyz_names_a_missing_schema(make_client: Any, tmp_path: Path) -> None:
    """A database nobody migrated: not ready, and the answer says what to run (it used to say ready)."""
    async with make_client(database_url=f"sqlite+aiosqlite:///{tmp_path / '未迁移.db'}") as c:
        resp = await c.get("/readyz")
        assert resp.status_code == 503
        body = resp.json()
        assert body["checks"] == {"database": True, "schema": False}
        assert body["problems"] == ["the database has no schema (never migrated): run `rubric-judge migrate`"]


async def test_scoring_goes_on_without_redis(make_client: Any, openai_server: OpenAIServer) -> None:
    async with make_client(redis_url=_dead_redis_url()) as c:
        resp = await c.post("/v1/score", json=score_body(sample(0)))
        assert resp.status_code == 200
        assert resp.json()["results"][0]["axes"]["safety"]["status"] == "ok"
        # The store still serves the verdict as a hit although the cache is gone.
        again = (await c.post("/v1/score", json=score_body(sample(0)))).json()["results"][0]
        assert again["cached"] is True
    assert openai_server.calls == 1


async def test_metrics_expose_request_latency_and_cache_counters(client: httpx.AsyncClient) -> None:
    await client.post("/v1/score", json=score_body(sample(0)))
    await client.post("/v1/score", json=score_body(sample(0)))
    text = (await client.get("/metrics")).text
    assert 'rj_request_seconds_count{method="POST",route="/v1/score",status="200"}' in text
    assert "rj_cache_hits_total" in text
    assert "rj_judge_call_seconds_count" in text
