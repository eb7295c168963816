"""``rubric-judge prune`` and ``export verdicts`` as a user runs them: real subprocesses on a fresh SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow.parquet as pq

from tests.judge.cli.test_app import EXAMPLES, read_jsonl, run_cli
from tests.judge.cli.test_app import env as env  # noqa: F401  (a fixture, used by name)


def _verdicts(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "rj.db") as conn:
        return int(conn.execute("SELECT count(*) FROM verdicts").fetchone()[0])


def test_prune_dry_run_then_prune_then_export(env: dict[str, str], tmp_path: Path) -> None:
    scored = tmp_path / "scored.jsonl"
    args = ["score", str(EXAMPLES), "-o", str(scored), "--rubric", "prmed-format", "--judge", "rules"]
    run_cli(*args, env=env)
    run_cli(*args[:3], str(tmp_path / "again.jsonl"), *args[4:], "--no-cache", env=env)
    n = len(read_jsonl(scored))
    assert _verdicts(tmp_path) == 2 * n

    dry = run_cli("prune", "--superseded", "--failed-older-than", "30d", "--dry-run", env=env)
    assert "dry run" in dry.stdout and "superseded verdicts" in dry.stdout
    assert _verdicts(tmp_path) == 2 * n  # nothing deleted

    done = run_cli("prune", "--superseded", env=env)
    assert "done" in done.stdout
    assert _verdicts(tmp_path) == n  # the first scoring's verdicts were superseded by the second

    out = tmp_path / "归档" / "verdicts.parquet"
    run_cli("export", "verdicts", "--since", "30d", "--format", "parquet", "-o", str(out), env=env)
    assert pq.read_table(out).num_rows == n
    stdout = run_cli("export", "verdicts", "--since", "2020-01-01", "--rubric", "prmed-format", env=env).stdout
    assert len(stdout.splitlines()) == n


def test_bad_options_are_named(env: dict[str, str]) -> None:
    bad_age = run_cli("prune", "--failed-older-than", "三十天", env=env, check=False)
    assert bad_age.returncode == 2 and "failed-older-than" in bad_age.stderr and "三十天" in bad_age.stderr
    nothing = run_cli("prune", "--dry-run", env=env, check=False)
    assert nothing.returncode == 2 and "nothing to prune" in nothing.stderr
    bad_format = run_cli("export", "verdicts", "--format", "xml", env=env, check=False)
    assert bad_format.returncode == 2 and "(format)" in bad_format.stderr
    bad_since = run_cli("export", "verdicts", "--since", "上个月", env=env, check=False)
    assert bad_since.returncode == 2 and "(since)" in bad_since.stderr
