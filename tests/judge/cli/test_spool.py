"""``rubric-judge spool status`` / ``spool replay``: what waits in the spool, and storing it now."""

from __future__ import annotations

import asyncio
from pathlib import Path

from judge.durability.spool import Spool, encode
from judge.store.database import create_engine, make_session_factory
from judge.store.verdicts_repository import VerdictRepository
from tests.judge.cli.test_app import env, run_cli  # noqa: F401 - the env fixture
from tests.judge.store.factories import make_sample, make_verdict


def test_status_lists_waiting_verdicts_and_replay_stores_them(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    spool_dir = tmp_path / "spool"
    env = {**env, "RJ_SPOOL_DIR": str(spool_dir)}
    pairs = [(make_verdict(s), s) for s in (make_sample(f"夜里咳嗽带血丝（{i}）") for i in range(3))]
    spool = Spool(spool_dir, env["RJ_DATABASE_URL"])
    spool.append([encode(v, s) for v, s in pairs])
    spool.close_own()

    listed = run_cli("spool", "status", env=env).stdout
    assert "verdicts-" in listed and " 3 " in listed and "waiting" in listed
    replayed = run_cli("spool", "replay", "--timeout-s", "30", env=env).stdout
    assert "replayed 3 verdicts" in replayed
    assert not list(spool_dir.glob("verdicts-*.jsonl"))

    async def stored() -> int:
        engine = create_engine(env["RJ_DATABASE_URL"])
        try:
            async with make_session_factory(engine)() as session:
                repo = VerdictRepository(session)
                return sum([await repo.get(v.id) is not None for v, _ in pairs])
        finally:
            await engine.dispose()

    assert asyncio.run(stored()) == 3
