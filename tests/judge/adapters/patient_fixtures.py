"""A live rubric-judge server whose judge, simulator and policy profiles are the loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from judge.settings import Settings
from tests.judge.adapters.conftest import serve
from tests.support.openai_server import OpenAIServer
from tests.support.simulator_cases import write_simulator_judges


@pytest.fixture
def patient_server(
    pg_url: str, pg_engine: object, redis_url: str, redis_prefix: str, tmp_path: Path, openai_server: OpenAIServer
) -> Iterator[str]:
    settings = Settings(
        database_url=pg_url,
        judges_file=write_simulator_judges(tmp_path / "judges.yaml", openai_server),
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        reward_judge="loop",
        _env_file=None,  # type: ignore[call-arg]
    )
    yield from serve(create_app(settings))
