"""A real rubric-judge server on loopback (uvicorn, PostgreSQL, Redis, the loopback judge) for the adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from api.app import create_app
from judge.adapters.client import close_shared_clients
from judge.settings import Settings
from tests.api.conftest import write_judges
from tests.support.live_server import live_server
from tests.support.openai_server import OpenAIServer


def serve(app: Starlette | Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread; yields its base URL and stops it afterwards."""
    with live_server(app) as url:
        yield url


@pytest.fixture
def reward_server(
    pg_url: str, pg_engine: object, redis_url: str, redis_prefix: str, tmp_path: Path, openai_server: OpenAIServer
) -> Iterator[str]:
    """The API with the loopback judge ``loop`` as its default reward judge."""
    settings = Settings(
        database_url=pg_url,
        judges_file=write_judges(tmp_path / "judges.yaml", openai_server),
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        reward_judge="loop",
        reward_rubric="prmed@1",
        _env_file=None,
    )
    yield from serve(create_app(settings))


@pytest.fixture(autouse=True)
async def _close_adapter_clients() -> AsyncIterator[None]:
    yield
    await close_shared_clients()
