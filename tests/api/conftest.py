"""API fixtures: an app on the test database, judges pointing at the loopback OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from judge.settings import Settings
from tests.support.openai_server import OpenAIServer

AppClient = Callable[..., Any]


USAGE_KEYS = ("calls", "prompt_tokens", "cached_tokens", "completion_tokens", "retries", "hedges")


async def stored_usage(client: httpx.AsyncClient, verdict_ids: list[str]) -> dict[str, int]:
    """The usage of these verdicts as the store gives them back (``GET /v1/verdicts/{id}``), summed."""
    total = dict.fromkeys(USAGE_KEYS, 0)
    for verdict_id in verdict_ids:
        resp = await client.get(f"/v1/verdicts/{verdict_id}")
        assert resp.status_code == 200, resp.text
        for key in USAGE_KEYS:
            total[key] += resp.json()["usage"][key]
    return total


def write_judges(path: Path, server: OpenAIServer, **overrides: Any) -> Path:
    judge = {
        "name": "loop",
        "backend": "openai",
        "model": "judge-model",
        "base_url": server.url,
        "concurrency": 16,
        "timeout_s": 5,
        "max_retries": 1,
        **overrides,
    }
    keyless = {**judge, "name": "needs-key", "api_key_env": "RJ_TEST_SURELY_UNSET_KEY"}
    path.write_text(yaml.safe_dump({"judges": [judge, keyless]}), encoding="utf-8")
    return path


@pytest.fixture
def judges_file(tmp_path: Path, openai_server: OpenAIServer) -> Path:
    return write_judges(tmp_path / "judges.yaml", openai_server)


@pytest.fixture
def settings(pg_url: str, pg_engine: AsyncEngine, judges_file: Path) -> Settings:
    # pg_engine empties the tables first, so every test starts from a clean store.
    # Reward routes default to prmed@1, the rubric these tests were written against (one judge call a sample);
    # prmed@2's own behaviour is tested in tests/integrity and tests/rubrics.
    return Settings(database_url=pg_url, judges_file=judges_file, reward_rubric="prmed@1", _env_file=None)  # type: ignore[call-arg]


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, behind an in-process HTTP client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rj.test", timeout=30) as client:
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings)) as c:
        yield c


@pytest.fixture
def make_client(settings: Settings) -> Callable[..., Any]:
    """Another app on the same database with some settings changed."""

    def factory(**changes: Any) -> Any:
        return running(create_app(settings.model_copy(update=changes)))

    return factory
