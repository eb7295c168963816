"""End to end: a real uvicorn server on loopback, the real OpenAI client behind it, Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from judge.settings import Settings
from tests.api.samples import sample, score_body
from tests.support.live_server import live_server as serve_live
from tests.support.openai_server import OpenAIServer


@pytest.fixture
def live_server(pg_url: str, pg_engine: object, judges_file: Path, redis_url: str, redis_prefix: str) -> Iterator[str]:
    settings = Settings(  # type: ignore[call-arg]
        database_url=pg_url, judges_file=judges_file, redis_url=redis_url, redis_prefix=redis_prefix, _env_file=None
    )
    with serve_live(create_app(settings)) as url:
        yield url


def test_score_through_a_real_server(live_server: str, openai_server: OpenAIServer) -> None:
    with httpx.Client(base_url=live_server, timeout=30) as client:
        assert client.get("/readyz").json()["checks"] == {"database": True, "schema": True, "redis": True}
        first = client.post("/v1/score", json=score_body(sample(0), sample(1)))
        assert first.status_code == 200
        results = first.json()["results"]
        assert [r["id"] for r in results] == ["样本-0", "样本-1"]
        assert all(a["status"] == "ok" for r in results for a in r["axes"].values())

        again = client.post("/v1/score", json=score_body(sample(1), sample(0))).json()["results"]
        assert [r["cached"] for r in again] == [True, True]
        assert [r["verdict_id"] for r in again] == [results[1]["verdict_id"], results[0]["verdict_id"]]
        assert openai_server.calls == 2

        verdict = client.get(f"/v1/verdicts/{results[0]['verdict_id']}").json()
        assert verdict["judge"] == "loop"
        assert "rj_request_seconds" in client.get("/metrics").text
