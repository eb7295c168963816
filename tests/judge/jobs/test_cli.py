"""``rubric-judge filter`` and ``curate`` as a user runs them: real subprocesses, interrupted and rerun."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from judge.settings import Settings
from tests.judge.jobs.conftest import (
    RunWorker,
    marker_judge,
    read_jsonl,
    sample_line,
    write_job_judges,
    write_jsonl,
)
from tests.support.live_server import live_server
from tests.support.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[3]


def cli_env(tmp_path: Path, judges: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RJ_")}
    env.update(
        RJ_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'local.db'}", RJ_JUDGES_FILE=str(judges), COLUMNS="200"
    )
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "judge", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def lines_written(*paths: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in paths if p.exists())


def interrupt_after(args: list[str], env: dict[str, str], outputs: tuple[Path, Path], at: int, sig: int) -> int:
    """Start the CLI, send ``sig`` once the outputs hold ``at`` lines; the exit status."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "judge", *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while lines_written(*outputs) < at:
        assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()
        assert time.monotonic() < deadline, "the CLI made no progress"
        time.sleep(0.02)
    proc.send_signal(sig)
    return proc.wait(timeout=60)


@pytest.fixture
def slow_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(latency_ms=40) as server:
        server.default = marker_judge
        yield server


def test_filter_resumes_after_ctrl_c_and_after_a_crash(tmp_path: Path, slow_server: OpenAIServer) -> None:
    judges = write_job_judges(tmp_path / "judges.yaml", slow_server, concurrency=4)
    env = cli_env(tmp_path, judges)
    run_cli("migrate", env=env)
    rows: list[object] = [sample_line(i, passing=i % 4 == 0) for i in range(500)]
    rows[41] = "{坏掉的一行".encode()
    source = write_jsonl(tmp_path / "样本.jsonl", rows)
    kept, dropped = tmp_path / "out" / "kept.jsonl", tmp_path / "out" / "dropped.jsonl"
    args = [
        "filter",
        str(source),
        "--kept",
        str(kept),
        "--dropped",
        str(dropped),
        "--judge",
        "loop",
        "--rubric",
        "prmed@1",
    ]
    args += ["--chunk-size", "16", "--window", "2"]

    assert interrupt_after(args, env, (kept, dropped), 80, signal.SIGINT) != 0  # Ctrl-C
    after_first = lines_written(kept, dropped)
    assert interrupt_after(args, env, (kept, dropped), after_first + 120, signal.SIGKILL) == -signal.SIGKILL
    # A crash may leave a torn last line: the rerun cuts it off and redoes that line.
    with dropped.open("ab") as fh:
        fh.write(b'{"line":9999,"outcome":"dro')
    calls_before = slow_server.calls
    done = run_cli(*args, env=env)

    records = read_jsonl(kept) + read_jsonl(dropped)
    lines = Counter(int(r["line"]) for r in records)
    assert sorted(lines) == list(range(1, 501))
    assert max(lines.values()) == 1
    assert all(r["outcome"] == "kept" for r in read_jsonl(kept))
    assert {int(r["line"]) for r in read_jsonl(kept)} == {i + 1 for i in range(500) if i % 4 == 0}
    bad = [r for r in records if r["outcome"] == "invalid"]
    assert [r["line"] for r in bad] == [42]
    # The rerun judged only what the first runs had not finished (some in-flight calls at the kill, at most).
    assert slow_server.calls - calls_before < 500 - after_first
    out = done.stdout
    assert "resumed" in out
    assert "pass rate 25.1%" in out  # 125 kept of 499 decided
    assert "emotion_perception" in out and "histogram" in out
    assert "most common failing axes" in out


def test_curate_locally_writes_sft_records_and_a_rounds_report(tmp_path: Path, openai_server: OpenAIServer) -> None:
    openai_server.default = marker_judge
    prices = {"currency": "CNY", "prompt": 2.0, "cached": 0.2, "completion": 8.0}
    judges = write_job_judges(tmp_path / "judges.yaml", openai_server, prices=prices)  # the judge's, not gen's
    env = cli_env(tmp_path, judges)
    run_cli("migrate", env=env)
    source = write_jsonl(
        tmp_path / "对话.jsonl",
        [
            {"id": "甲", "prompt": "俺这腰疼得直不起来"},
            {"id": "乙", "messages": [{"role": "user", "content": "娃咳嗽好几天"}]},
        ],
    )
    kept, dropped = tmp_path / "sft.jsonl", tmp_path / "rest.jsonl"
    args = [
        "curate",
        str(source),
        "--kept",
        str(kept),
        "--dropped",
        str(dropped),
        "--judge",
        "loop",
        "--rubric",
        "prmed@1",
    ]
    done = run_cli(*args, "--generator", "gen", env=env)
    records = read_jsonl(kept)
    assert [r["id"] for r in records] == ["甲", "乙"]
    assert all(r["messages"][-1]["content"].startswith("<think>") for r in records)
    assert all(r["lineage"]["round"] == 2 for r in records)
    assert "curation rounds" in done.stdout
    # What the calls took, and what the priced judge's cost.
    tokens = r"[\d,]+ prompt tokens \([\d,]+ cached\), [\d,]+ completion"
    spent = re.search(rf"judge: (\d+) calls, {tokens}; ([\d.]+) CNY", done.stdout)
    assert spent is not None and int(spent.group(1)) >= 2 and float(spent.group(2)) > 0
    assert re.search(rf"generator: \d+ calls, {tokens}\n", done.stdout)  # gen has no prices: no cost
    assert read_jsonl(dropped) == []
    # A rerun finds everything done.
    again = run_cli(*args, "--generator", "gen", env=env)
    assert "resumed: 2" in again.stdout
    assert len(read_jsonl(kept)) == 2


def test_curate_without_a_generator_profile_names_the_field(tmp_path: Path, openai_server: OpenAIServer) -> None:
    env = cli_env(tmp_path, write_job_judges(tmp_path / "judges.yaml", openai_server))
    run_cli("migrate", env=env)
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "头疼"}])
    proc = run_cli(
        "curate", str(source), "--kept", str(tmp_path / "k"), "--dropped", str(tmp_path / "d"),
        "--judge", "loop", "--generator", "不存在", env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "JudgeNotFound (generator)" in proc.stderr


@pytest.fixture
def live_api(job_settings: Settings) -> Iterator[str]:
    with live_server(create_app(job_settings)) as url:
        yield url


async def test_filter_against_a_server_and_its_workers(
    tmp_path: Path, live_api: str, openai_server: OpenAIServer, job_judges: Path, run_worker: RunWorker
) -> None:
    openai_server.default = marker_judge
    source = write_jsonl(tmp_path / "in.jsonl", [sample_line(i, passing=i < 3) for i in range(30)])
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    args = [
        "filter",
        str(source),
        "--kept",
        str(kept),
        "--dropped",
        str(dropped),
        "--judge",
        "loop",
        "--rubric",
        "prmed@1",
    ]
    args += ["--server", live_api, "--chunk-size", "7"]
    env = cli_env(tmp_path, job_judges)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "judge", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def cli_done() -> bool:
        return proc.returncode is not None

    waiter = asyncio.create_task(proc.communicate())
    await run_worker(cli_done, timeout_s=120)
    stdout, stderr = await waiter
    assert proc.returncode == 0, stderr.decode() + stdout.decode()
    assert [r["line"] for r in read_jsonl(kept)] == [1, 2, 3]
    assert [r["line"] for r in read_jsonl(dropped)] == list(range(4, 31))
    assert "pass rate 10.0%" in stdout.decode()
    # Run again: the CLI follows the same job (no second upload) and rewrites the same files.
    calls = openai_server.calls
    again = await asyncio.to_thread(run_cli, *args, env=env)
    assert "following job" in again.stdout
    assert openai_server.calls == calls
    assert len(read_jsonl(kept)) == 3 and len(read_jsonl(dropped)) == 27
