"""``rubric-judge study`` as a user runs it: create with Chinese rater names, status, a new link, close."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

from tests.judge.cli.test_app import env, run_cli  # noqa: F401  (env is a fixture)


def _samples(path: Path, n: int, *, bad_line: int | None = None) -> Path:
    lines = []
    for i in range(n):
        sample = {
            "id": f"样本-{i}",
            "messages": [{"role": "user", "content": f"大夫，我这两天胃里烧得慌，吃啥吐啥（第{i}例）"}],
            "reasoning": "患者描述口语化：“胃里烧得慌”指烧灼感。",
            "response": "建议先清淡饮食，如呕血或黑便请立即就医。",
        }
        lines.append(json.dumps(sample, ensure_ascii=False) if i + 1 != bad_line else '{"messages": []}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _tokens(stdout: str) -> list[str]:
    return re.findall(r"/ui/r/([A-Za-z0-9_-]{20,})", stdout)


def _token_hashes(env: dict[str, str]) -> set[str]:  # noqa: F811
    db = env["RJ_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT token_hash FROM study_raters")}


def test_create_status_link_close(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    samples = _samples(tmp_path / "in.jsonl", 6)
    created = run_cli(
        "study", "create", "胃痛研究", "--rubric", "prmed", "--samples", str(samples),
        "--raters", "张医生,李医生,王医生", "--per-sample", "2", "--base-url", "https://rate.example",
        env=env,
    )  # fmt: skip
    assert "6 samples × 2 raters" in created.stdout
    tokens = _tokens(created.stdout)
    assert len(tokens) == 3 and "https://rate.example/ui/r/" in created.stdout
    for name in ("张医生", "李医生", "王医生"):
        assert name in created.stdout
    assert _token_hashes(env) == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}

    status = run_cli("study", "status", "胃痛研究", env=env)
    assert re.search(r"张医生\s*│\s*4\s*│\s*0\s*│\s*0\s*│\s*4", status.stdout), status.stdout
    assert "/v1/studies/胃痛研究/report" in status.stdout

    renewed = run_cli("study", "link", "胃痛研究", "李医生", env=env)
    (new_token,) = _tokens(renewed.stdout)
    hashes = _token_hashes(env)
    assert hashlib.sha256(new_token.encode()).hexdigest() in hashes
    assert hashlib.sha256(tokens[1].encode()).hexdigest() not in hashes

    exported = tmp_path / "items.jsonl"
    run_cli("study", "export", "胃痛研究", "-o", str(exported), env=env)
    records = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 12 and {r["state"] for r in records} == {"pending"}
    assert {r["rater"] for r in records} == {"human:张医生", "human:李医生", "human:王医生"}
    assert {r["sample_id"] for r in records} == {f"样本-{i}" for i in range(6)}

    closed = run_cli("study", "close", "胃痛研究", env=env)
    assert "closed" in closed.stdout
    listed = run_cli("study", "list", env=env)
    assert "胃痛研究" in listed.stdout and "closed" in listed.stdout


def test_bad_input_names_the_line_or_the_field(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    bad = run_cli(
        "study", "create", "坏", "--samples", str(_samples(tmp_path / "bad.jsonl", 4, bad_line=3)),
        "--raters", "张医生,李医生", env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "line 3" in bad.stderr
    few = run_cli(
        "study", "create", "少", "--samples", str(_samples(tmp_path / "few.jsonl", 2)),
        "--raters", "甲,乙,丙,丁", env=env, check=False,
    )  # fmt: skip
    assert few.returncode == 2 and "(samples)" in few.stderr and "at least 6" in few.stderr
    missing = run_cli("study", "status", "没有这个研究", env=env, check=False)
    assert missing.returncode == 2 and "StudyNotFound" in missing.stderr
