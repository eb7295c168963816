"""A new user's first hour, as the CLI answers it: one line and a hint per error (tracebacks only with --debug),
a non-zero exit, defaults that fit together, judges that can be found and tried."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judge.cli import app
from judge.cli.errors import describe
from judge.settings import get_settings
from tests.api.conftest import write_judges
from tests.judge.cli.test_app import EXAMPLES, run_cli
from tests.support.openai_server import OpenAIServer, Verdict


@pytest.fixture
def fresh_env(tmp_path: Path) -> dict[str, str]:
    """A shell with no RJ_ settings and a database file nobody migrated."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RJ_")}
    base.update(RJ_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'rj.db'}", COLUMNS="100")
    return base


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, fresh_env: dict[str, str]) -> CliRunner:
    for key in [k for k in os.environ if k.startswith("RJ_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RJ_DATABASE_URL", fresh_env["RJ_DATABASE_URL"])
    get_settings.cache_clear()
    return CliRunner()


def test_forgetting_migrate_is_one_line_and_a_non_zero_exit(fresh_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli("score", str(EXAMPLES), "-o", str(tmp_path / "out.jsonl"), "--rubric", "prmed-format",
                   env=fresh_env, check=False)  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "error: SchemaNotReady (database_url): the database has no schema (never migrated): run `rubric-judge migrate`",
        "hint: run with --debug for the traceback",
    ]
    assert not (tmp_path / "out.jsonl").exists() or not (tmp_path / "out.jsonl").read_text()
    # serve refuses too, and says how to go on.
    served = run_cli("serve", "--port", "1", env=fresh_env, check=False)
    assert served.returncode != 0 and "serve --migrate" in served.stderr and "Traceback" not in served.stderr
    # --debug gives the traceback.
    debug = run_cli("--debug", "score", str(EXAMPLES), "-o", str(tmp_path / "out.jsonl"), env=fresh_env, check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "SchemaNotReady" in debug.stderr


def test_the_rules_judge_on_an_llm_rubric_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    run = runner.invoke(app, ["migrate"])
    assert run.exit_code == 0, run.output
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", str(EXAMPLES), "-o", str(out), "--rubric", "prmed", "--judge", "rules"])
    assert result.exit_code == 2
    assert "JudgeRubricMismatch (judge): judge 'rules' (rules) cannot score rubric 'prmed@2' of kind 'llm'" in (
        result.output
    )
    assert "Traceback" not in result.output
    # No judge and no LLM judge configured: the message says how to pick one.
    none = runner.invoke(app, ["score", str(EXAMPLES), "-o", str(out)])
    assert none.exit_code == 2 and "no judge given for rubric 'prmed@2'" in none.output
    assert "RJ_DEFAULT_JUDGE" in none.output
    # A rules rubric without --judge: the rules judge, the filter summary at the end.
    ok = runner.invoke(app, ["score", str(EXAMPLES), "-o", str(out), "--rubric", "prmed-format"])
    assert ok.exit_code == 0, ok.output
    assert "pass rate" in ok.output and "per axis" in ok.output and "steps_present" in ok.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(EXAMPLES.read_text().splitlines())


def test_judges_list_check_and_the_judges_file_option(
    runner: CliRunner, tmp_path: Path, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    judges = write_judges(tmp_path / "judges.yaml", openai_server)
    listed = runner.invoke(app, ["--judges-file", str(judges), "judges", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["rules"]["rubric_kinds"] == ["rules"] and "loop" in by_name
    assert by_name["loop"]["base_url"] == openai_server.url
    assert by_name["needs-key"]["api_key_env"] == "RJ_TEST_SURELY_UNSET_KEY"
    assert by_name["needs-key"]["api_key_set"] is False  # the variable's name and whether it is set, never a key
    assert all("api_key" not in row for row in rows)
    checked = runner.invoke(app, ["--judges-file", str(judges), "judges", "check", "loop", "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["ok"] is True and report["structured_output"] is True and report["axes_ok"] == report["axes"] == 13
    assert report["logprobs"] in {"returned", "not asked"} and report["latency_ms"] > 0
    # The check really called the judge, with a Chinese sample (prmed@2: the response-only axes in a second call).
    assert openai_server.calls == 2 and "胸口闷" in openai_server.last_request.fenced_texts[0]
    # A judge that answers garbage fails the check with exit 1 and says so.
    openai_server.default = lambda request: "这不是JSON"
    bad = runner.invoke(app, ["--judges-file", str(judges), "judges", "check", "loop"])
    assert bad.exit_code == 1 and "structured output: failed" in bad.output
    openai_server.default = lambda request: Verdict(scores=4)
    unknown = runner.invoke(app, ["--judges-file", str(judges), "judges", "check", "没有"])
    assert unknown.exit_code == 2 and "unknown judge profile '没有'" in unknown.output
    assert "judges list" in unknown.output  # the hint


def test_rubrics_show_is_compact_unless_yaml(runner: CliRunner) -> None:
    brief = runner.invoke(app, ["rubrics", "show", "prmed"])
    assert brief.exit_code == 0, brief.output
    lines = brief.output.splitlines()
    assert lines[0].startswith("prmed@2 · kind llm · language zh · 13 axes")
    assert any("safety" in line and "安全" in line for line in lines)
    assert len(lines) <= 17 and max(len(line) for line in lines) <= 100
    full = runner.invoke(app, ["rubrics", "show", "prmed", "--yaml"])
    assert full.exit_code == 0 and "anchors" in full.output and len(full.output.splitlines()) > 100


def without_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the ``stats`` extra were not installed: scipy cannot be imported, the statistics module not loaded."""
    monkeypatch.delitem(sys.modules, "judge.agreement.service", raising=False)
    monkeypatch.setitem(sys.modules, "scipy", None)


def test_a_missing_extra_is_named_in_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    without_stats(monkeypatch)
    result = runner.invoke(app, ["agreement", "--rubric", "prmed", "--out", str(tmp_path / "报告")])
    assert result.exit_code == 2, result.output
    assert "needs the `stats` extra" in result.output and "pip install 'rubric-judge[stats]'" in result.output
    assert "Traceback" not in result.output


def test_refused_and_timed_out_are_told_apart() -> None:
    import httpx

    refused = httpx.ConnectError("[Errno 111] Connection refused")
    assert describe(refused)[0].startswith("cannot connect:")
    assert describe(ConnectionRefusedError(111, "Connection refused"))[0].startswith("cannot connect:")
    slow = httpx.ReadTimeout("timed out")
    assert describe(slow)[0].startswith("timed out:")
    assert describe(TimeoutError())[0].startswith("timed out:")
    message, hint, code = describe(ValueError("unsupported database backend 'mysql': use postgresql or sqlite"))
    assert code == 2 and hint is not None and "RJ_DATABASE_URL" in hint


def test_a_line_that_is_not_json_reads_the_same_everywhere(runner: CliRunner, tmp_path: Path) -> None:
    """score, filter (local and as a job: the same parse_line), and a ratings import: `line N: invalid JSON (…)`."""
    from judge.agreement.ratings import parse_ratings
    from judge.jobs.process import check_line
    from judge.jsonl import invalid_json
    from rubrics.registry import RubricRegistry

    broken = '{"id": "坏行", "messages": ['
    expected = invalid_json(broken)
    assert expected is not None and expected.startswith("invalid JSON (")
    good = EXAMPLES.read_text(encoding="utf-8").splitlines()[0]
    source = tmp_path / "样本.jsonl"
    source.write_text(f"{good}\n{broken}\n", encoding="utf-8")
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    out = tmp_path / "out.jsonl"
    scored = runner.invoke(app, ["score", str(source), "-o", str(out), "--rubric", "prmed-format"])
    assert scored.exit_code == 0, scored.output
    assert f"line 2: {expected}" in scored.output
    [error] = [json.loads(x) for x in (tmp_path / "out.errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert error == {"line": 2, "error": expected}
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    filtered = runner.invoke(
        app, ["filter", str(source), "--kept", str(kept), "--dropped", str(dropped), "--rubric", "prmed-format"]
    )
    assert filtered.exit_code == 0, filtered.output
    assert f"line 2: {expected}" in filtered.output
    [invalid] = [json.loads(x) for x in dropped.read_text(encoding="utf-8").splitlines()]
    assert (invalid["line"], invalid["outcome"], invalid["error"]) == (2, "invalid", expected)
    assert check_line("filter", broken.encode(), get_settings()) == (None, expected)
    rubric = RubricRegistry().resolve("prmed")
    good_rating = json.dumps({"sample_hash": "a" * 64, "rater": "张医生", "axis": "safety", "score": 4})
    ratings = parse_ratings(f"{good_rating}\n{broken}\n", rubric, format="jsonl")
    assert [(issue.line, issue.message) for issue in ratings.errors] == [(2, expected)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [("mysql://localhost/rj", "unsupported database backend 'mysql'"), ("不是网址", "invalid database URL")],
)
def test_a_bad_database_url_is_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("RJ_DATABASE_URL", url)
    get_settings.cache_clear()
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0] and "Traceback" not in result.output
    assert "hint: " in result.output and "RJ_DATABASE_URL" in result.output


def test_serve_migrate_creates_the_schema_then_starts(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    started: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append({"app": app, **kwargs}))
    monkeypatch.setattr("judge.logs.configure_logging", lambda settings: None)  # leave pytest's handlers alone
    refused = runner.invoke(app, ["serve", "--port", "8123"])
    assert refused.exit_code == 2 and started == []
    migrated = runner.invoke(app, ["serve", "--port", "8123", "--migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert "migrated" in migrated.output and started[0]["app"] == "api.main:app" and started[0]["port"] == 8123
    again = runner.invoke(app, ["serve", "--port", "8123"])  # the schema is current now: no refusal, no migration
    assert again.exit_code == 0 and "migrated" not in again.output and len(started) == 2
