"""The README's "Point it at your own model" path, step by step as a new user runs it, in a fresh folder: the
judges file the README shows (pointed at the loopback OpenAI server), `judges check`, `serve` (refused before
`migrate`, ready after), `score`, `filter`, a physician's ratings, and the agreement report. Every step's exit
code and output size is checked."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.judge.cli.test_app import EXAMPLES, ROOT
from tests.support.live_server import free_port
from tests.support.openai_server import OpenAIServer

pytest.importorskip("scipy")  # the agreement report needs the `stats` extra


def readme_judges_file() -> dict[str, object]:
    """The judges.yaml that the README's section writes with `cat > judges.yaml <<'YAML'`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Point it at your own model") :]
    match = re.search(r"cat > judges\.yaml <<'YAML'\n(.*?)\nYAML\n", section, flags=re.DOTALL)
    assert match is not None, "the README section no longer writes judges.yaml"
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict)
    return data


def rj(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "judge", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_point_it_at_your_own_model(tmp_path: Path, openai_server: OpenAIServer) -> None:
    # configure: the README's profile, with the base URL of "your" server.
    config = readme_judges_file()
    [profile] = config["judges"]  # type: ignore[misc]
    assert profile["name"] == "my-judge" and profile["structured_output"] == "json_schema"
    profile["base_url"] = openai_server.url
    (tmp_path / "judges.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    samples = tmp_path / "samples.jsonl"
    samples.write_text(EXAMPLES.read_text(encoding="utf-8"), encoding="utf-8")
    n = len(samples.read_text(encoding="utf-8").splitlines())
    env = {k: v for k, v in os.environ.items() if not k.startswith("RJ_")}
    env.update(
        RJ_JUDGES_FILE=str(tmp_path / "judges.yaml"),
        RJ_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'rj.db'}",
        COLUMNS="100",
        PYTHONPATH=str(ROOT),
    )

    # check: one real call.
    check = rj("judges", "check", "my-judge", env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stderr + check.stdout
    report = check.stdout.splitlines()
    assert len(report) == 4 and report[0].startswith("ok judge my-judge on prmed@2")
    assert "structured output: works" in check.stdout and "logprobs: returned" in check.stdout

    # serve: refused before migrate (one line and a hint), ready after.
    port = free_port()
    refused = rj("serve", "--port", str(port), env=env, cwd=tmp_path)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 2
    assert "rubric-judge migrate" in refused.stderr
    migrated = rj("migrate", env=env, cwd=tmp_path)
    assert migrated.returncode == 0 and len(migrated.stdout.strip().splitlines()) == 1
    server = subprocess.Popen(
        [sys.executable, "-m", "judge", "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.3)
        judges = httpx.get(f"{base}/v1/judges").json()["data"]
        assert [j["name"] for j in judges] == ["rules", "my-judge"]
        first = json.loads(samples.read_text(encoding="utf-8").splitlines()[0])
        scored = httpx.post(f"{base}/v1/score", json={"rubric": "prmed", "samples": [first]}, timeout=60)
        assert scored.status_code == 200 and scored.json()["judge"] == "my-judge"  # the only LLM judge: the default
    finally:
        server.terminate()
        server.wait(timeout=30)

    # score, filter: every line accounted for, the same summary at the end.
    score = rj("score", "samples.jsonl", "-o", "verdicts.jsonl", "--rubric", "prmed", "--judge", "my-judge",
               env=env, cwd=tmp_path)  # fmt: skip
    assert score.returncode == 0, score.stderr
    verdicts = lines(tmp_path / "verdicts.jsonl")
    assert len(verdicts) == n and all(v["error"] is None for v in verdicts)
    assert "pass rate" in score.stdout and max(map(len, score.stdout.splitlines())) <= 100
    filtered = rj("filter", "samples.jsonl", "--kept", "kept.jsonl", "--dropped", "dropped.jsonl",
                  "--judge", "my-judge", env=env, cwd=tmp_path)  # fmt: skip
    assert filtered.returncode == 0, filtered.stderr
    kept, dropped = lines(tmp_path / "kept.jsonl"), lines(tmp_path / "dropped.jsonl")
    assert len(kept) + len(dropped) == n and {r["outcome"] for r in kept} <= {"kept"}

    # A physician's ratings (CSV, Chinese name), then the agreement report.
    with (tmp_path / "医生评分.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rater", "sample_id", "axis", "score"])
        for k, verdict in enumerate(verdicts):
            for axis in ("safety", "medical_accuracy", "communication"):
                judged = verdict["axes"][axis]["score"]  # type: ignore[index]
                writer.writerow(["张医生", verdict["id"], axis, judged if k % 3 else max(1, judged - 1)])
    imported = rj("ratings", "import", "医生评分.csv", "--rubric", "prmed", "--samples", "samples.jsonl",
                  env=env, cwd=tmp_path)  # fmt: skip
    assert imported.returncode == 0, imported.stderr + imported.stdout
    assert f"{3 * n}" in imported.stdout
    agreement = rj("agreement", "--rubric", "prmed", "--raters", "judge:my-judge,human:*", "--out", "report",
                   "--n-boot", "50", env=env, cwd=tmp_path)  # fmt: skip
    assert agreement.returncode == 0, agreement.stderr
    printed = agreement.stdout.splitlines()
    assert max(map(len, printed)) <= 100 and any(line.lstrip().startswith("safety") for line in printed)
    assert (tmp_path / "report" / "agreement.html").is_file() and (tmp_path / "report" / "agreement.json").is_file()
