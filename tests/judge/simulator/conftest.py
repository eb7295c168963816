"""A runtime on a migrated SQLite file with judge, simulator and policy profiles on the loopback server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from judge.runtime import Runtime
from judge.settings import Settings
from judge.simulator.service import SimulatorService
from tests.support.openai_server import OpenAIServer
from tests.support.simulator_cases import write_simulator_judges


@pytest.fixture
async def service(sqlite_url: str, tmp_path: Path, openai_server: OpenAIServer) -> AsyncIterator[SimulatorService]:
    settings = Settings(
        database_url=sqlite_url,
        judges_file=write_simulator_judges(tmp_path / "judges.yaml", openai_server),
        _env_file=None,  # type: ignore[call-arg]
    )
    async with await Runtime.open(settings) as runtime:
        simulator = SimulatorService(runtime)
        try:
            yield simulator
        finally:
            await simulator.aclose()
