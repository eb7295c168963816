"""``rubric-judge simulate``, ``perturb`` and ``gradient`` as a user runs them (subprocesses, SQLite, loopback)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.judge.cli.test_app import env, read_jsonl, run_cli  # noqa: F401 - env is a fixture
from tests.support.openai_server import OpenAIServer
from tests.support.simulator_cases import CASE_RELATIVE_ZH, CASE_ZH, write_simulator_judges


def test_simulate_writes_episodes_and_resumes(env: dict[str, str], tmp_path: Path, openai_server: OpenAIServer) -> None:  # noqa: F811
    env = {**env, "RJ_JUDGES_FILE": str(write_simulator_judges(tmp_path / "judges.yaml", openai_server))}
    source = tmp_path / "cases.jsonl"
    source.write_text(
        "\n".join(json.dumps(c, ensure_ascii=False) for c in (CASE_ZH, {"persona": None}, CASE_RELATIVE_ZH)) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "episodes.jsonl"
    args = ("simulate", str(source), "--policy", "policy", "--simulator", "patient", "--judge", "loop")
    proc = run_cli(*args, "--turns", "2", "--reward-policy", "min", "-o", str(out), env=env)
    episodes = {e["line"]: e for e in read_jsonl(out)}
    assert set(episodes) == {1, 3}
    summary = episodes[1]["summary"]
    assert summary["policy"] == "min" and summary["episode_reward"] == min(summary["turn_rewards"])  # type: ignore[index,call-overload]
    assert len(episodes[1]["turns"]) == 2 and episodes[1]["end_reason"] == "max_turns"  # type: ignore[arg-type]
    assert "persona" in str(read_jsonl(tmp_path / "episodes.errors.jsonl")[0]["error"])
    assert "episodes" in proc.stdout
    calls = openai_server.calls
    again = run_cli(*args, "--turns", "2", "-o", str(out), env=env)
    assert openai_server.calls == calls and len(read_jsonl(out)) == 2 and "3" in again.stdout
    bad = run_cli(*args, "--reward-policy", "median", "-o", str(out), env=env, check=False)
    assert bad.returncode == 2 and "reward_policy" in bad.stderr


def test_perturb_and_gradient(env: dict[str, str], tmp_path: Path, openai_server: OpenAIServer) -> None:  # noqa: F811
    env = {**env, "RJ_JUDGES_FILE": str(write_simulator_judges(tmp_path / "judges.yaml", openai_server))}
    proc = run_cli(
        "perturb", "--simulator", "patient", "--text", "我胸口疼了三天。", "--types", "vague,dialectal", env=env
    )
    assert "哎呀" in proc.stdout and "vague" in proc.stdout
    messages = tmp_path / "messages.jsonl"
    messages.write_text(
        json.dumps({"id": "m1", "text": "孩子发烧两天，最高39度。"}, ensure_ascii=False) + "\n{坏行\n", encoding="utf-8"
    )
    rewrites = tmp_path / "rewrites.jsonl"
    run_cli("perturb", str(messages), "--simulator", "patient", "--levels", "mild,heavy", "-o", str(rewrites), env=env)
    good, bad = read_jsonl(rewrites)
    assert good["id"] == "m1" and [r["level"] for r in good["rewrites"]] == ["mild", "heavy"]  # type: ignore[union-attr]
    assert all("39度" in r["text"] for r in good["rewrites"]) and bad["line"] == 2 and "error" in bad  # type: ignore[union-attr]
    source = tmp_path / "cases.jsonl"
    source.write_text(
        "\n".join(json.dumps({**CASE_ZH, "id": f"c{i}", "opening": f"病例{i}：胸口疼"}) for i in range(4)) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "gradient"
    args = ("gradient", str(source), "--policy", "policy", "--judge", "loop", "--simulator", "patient")
    proc = run_cli(*args, "--levels", "formal,heavy", "--out", str(out), "--n-boot", "50", env=env)
    report = json.loads((out / "gradient.json").read_text(encoding="utf-8"))
    assert report["levels"] == ["formal", "heavy"] and report["n_cases"] == 4
    assert [r["level"] for r in report["results"]] == ["formal", "heavy"]
    assert (out / "gradient.png").stat().st_size > 1000 and "重度扰动" in (out / "gradient.html").read_text("utf-8")
    assert "drop from formal" in proc.stdout
    bad = run_cli(*args, "--levels", "formal,extreme", "--out", str(out), env=env, check=False)
    assert bad.returncode == 2 and "levels" in bad.stderr
