"""The CLI as a user runs it: real subprocesses on a fresh SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import write_judges
from tests.support.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "samples.jsonl"


def run_cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "judge", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RJ_")}
    base.update(RJ_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'rj.db'}", COLUMNS="200")
    run_cli("migrate", env=base)
    return base


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_score_examples_with_the_rules_judge(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = run_cli("score", str(EXAMPLES), "-o", str(out), "--rubric", "prmed-format", "--judge", "rules", env=env)
    lines = read_jsonl(out)
    expected = [json.loads(x) for x in EXAMPLES.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert [r["line"] for r in lines] == list(range(1, len(expected) + 1))
    assert [r["id"] for r in lines] == [e["id"] for e in expected]
    assert all(set(r["axes"]) == {"steps_present", "steps_order", "response_present", "language_match"} for r in lines)  # type: ignore[arg-type]
    assert "scored" in proc.stdout


def test_bad_lines_go_to_the_errors_file_with_line_numbers(env: dict[str, str], tmp_path: Path) -> None:
    good = EXAMPLES.read_text(encoding="utf-8").splitlines()[0]
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [good, "{不是JSON", json.dumps({"id": "缺少回复", "messages": [{"role": "user", "content": "头疼"}]})]
        )
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    run_cli("score", str(source), "-o", str(out), "--rubric", "prmed-format", "--judge", "rules", env=env)
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert [e["line"] for e in errors] == [2, 3]
    assert "response" in str(errors[1]["error"])
    assert [r["line"] for r in read_jsonl(out)] == [1]


def test_a_rerun_after_a_crash_resumes_without_duplicates(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    args = ("score", str(EXAMPLES), "-o", str(out), "--rubric", "prmed-format", "--judge", "rules")
    run_cli(*args, env=env)
    complete = out.read_text(encoding="utf-8").splitlines()
    # A crash mid-write: five whole lines survive, the sixth is torn.
    out.write_text("\n".join(complete[:5]) + "\n" + complete[5][:40], encoding="utf-8")
    proc = run_cli(*args, env=env)
    resumed = read_jsonl(out)
    assert sorted(r["line"] for r in resumed) == list(range(1, len(complete) + 1))  # type: ignore[type-var]
    assert "5" in proc.stdout
    # Everything after the first five came from the store: same verdicts as the first run.
    first_ids = {json.loads(x)["line"]: json.loads(x)["verdict_id"] for x in complete}
    assert all(r["verdict_id"] == first_ids[r["line"]] for r in resumed)


def test_score_with_an_llm_judge_profile(env: dict[str, str], tmp_path: Path, openai_server: OpenAIServer) -> None:
    env = {**env, "RJ_JUDGES_FILE": str(write_judges(tmp_path / "judges.yaml", openai_server))}
    out = tmp_path / "out.jsonl"
    run_cli("score", str(EXAMPLES), "-o", str(out), "--rubric", "prmed", "--judge", "loop", env=env)
    lines = read_jsonl(out)
    assert len(lines) == openai_server.calls
    assert all(a["status"] == "ok" for r in lines for a in r["axes"].values())  # type: ignore[attr-defined]


def test_score_asks_the_judge_for_scores_only(env: dict[str, str], tmp_path: Path, openai_server: OpenAIServer) -> None:
    env = {**env, "RJ_JUDGES_FILE": str(write_judges(tmp_path / "judges.yaml", openai_server))}
    out = tmp_path / "out.jsonl"
    run_cli("score", str(EXAMPLES), "-o", str(out), "--judge", "loop", "--rationale", "none", env=env)
    lines = read_jsonl(out)
    schema = openai_server.last_request.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["axes"]["properties"]["safety"] == {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    assert all(all(a["status"] == "ok" and "rationale" not in a for a in r["axes"].values()) for r in lines)  # type: ignore[attr-defined]
    bad = run_cli("score", str(EXAMPLES), "-o", str(out), "--judge", "loop", "--rationale", "短", env=env, check=False)
    assert bad.returncode == 2 and "--rationale" in bad.stderr


def test_rubrics_commands(env: dict[str, str], tmp_path: Path) -> None:
    assert "prmed@1" in run_cli("rubrics", "list", env=env).stdout
    shown = run_cli("rubrics", "show", "prmed", env=env).stdout
    assert "情绪感知" in shown
    assert "emotion_perception" in shown
    assert "valid" in run_cli("rubrics", "validate", str(ROOT / "examples" / "my-rubric.yaml"), env=env).stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: 坏的\nversion: 0\n", encoding="utf-8")
    proc = run_cli("rubrics", "validate", str(broken), env=env, check=False)
    assert proc.returncode == 2
    assert "InvalidRubric" in proc.stderr


def test_rewards_for_a_batch_of_rollouts(env: dict[str, str], tmp_path: Path) -> None:
    samples = [json.loads(x) for x in EXAMPLES.read_text(encoding="utf-8").splitlines() if x.strip()]
    rollouts = [{**s, "group_id": "第一组" if i < 3 else "第二组"} for i, s in enumerate(samples[:6])]
    rollouts[0].pop("messages")  # an invalid rollout: it must not sink the batch
    source = tmp_path / "rollouts.jsonl"
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rollouts) + "\n", encoding="utf-8")
    out = tmp_path / "rewards.json"
    args = ("rewards", str(source), "-o", str(out), "--rubric", "prmed-format", "--judge", "rules", "--on-failure")
    proc = run_cli(*args, "floor", env=env)
    body = json.loads(out.read_text(encoding="utf-8"))
    assert [item["status"] for item in body["items"]][0] == "invalid"
    assert body["items"][0]["reward"] == 0.0  # floor policy
    assert all(isinstance(item["reward"], float) for item in body["items"][1:])
    assert {g["group_id"]: g["size"] for g in body["groups"]} == {"第一组": 3, "第二组": 3}
    assert "zero-variance groups" in proc.stdout
