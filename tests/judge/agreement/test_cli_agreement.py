"""The agreement commands as a user runs them: real subprocesses on a fresh SQLite file."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from judge.store.database import create_engine, make_session_factory
from judge.store.ratings_repository import RatingRepository
from tests.api.conftest import write_judges
from tests.judge.cli.test_app import EXAMPLES, read_jsonl, run_cli
from tests.support.openai_server import ChatRequest, OpenAIServer, Verdict, default_scores

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "rj.db"


@pytest.fixture
def env(db: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RJ_")}
    base.update(RJ_DATABASE_URL=f"sqlite+aiosqlite:///{db}", COLUMNS="200")
    run_cli("migrate", env=base)
    return base


def _ratings_by_run(db: Path, rater: str) -> dict[int, int]:
    """The rater's ratings per run as studies read them (a judge's run 0 from its verdicts, the rest from rows)."""
    with sqlite3.connect(db) as conn:
        rubrics = [h for (h,) in conn.execute("SELECT rubric_hash FROM verdicts UNION SELECT rubric_hash FROM ratings")]

    async def read() -> Counter[int]:
        engine = create_engine(f"sqlite+aiosqlite:///{db}")
        try:
            async with make_session_factory(engine)() as session:
                repo = RatingRepository(session)
                runs: Counter[int] = Counter()
                for rubric_hash in rubrics:
                    runs.update(r.run for r in await repo.query(rubric_hash, [rater]))
                return runs
        finally:
            await engine.dispose()

    return dict(asyncio.run(read()))


def test_import_with_bad_rows_then_a_report_in_three_kinds_of_files(
    env: dict[str, str], db: Path, tmp_path: Path
) -> None:
    scored = tmp_path / "scored.jsonl"
    run_cli("score", str(EXAMPLES), "-o", str(scored), "--rubric", "prmed-format", "--judge", "rules", env=env)
    results = read_jsonl(scored)
    # The rules judge's verdicts are already ratings.
    assert _ratings_by_run(db, "judge:rules") == {0: sum(len(r["axes"]) for r in results)}  # type: ignore[arg-type]

    # 张医生 copies the judge; 李医生 gives every sample a 3. Keyed by the ids of the scored input file.
    lines = ["sample_id,rater,axis,score"]
    for r in results:
        for axis, a in r["axes"].items():  # type: ignore[attr-defined]
            lines += [f"{r['id']},张医生,{axis},{a['score']}", f"{r['id']},李医生,{axis},3"]
    good = len(lines) - 1
    lines += ["未知样本,张医生,steps_present,3", f"{results[0]['id']},王医生,steps_present,9"]
    ratings = tmp_path / "医生评分.csv"
    ratings.write_text("\n".join(lines) + "\n", encoding="utf-8")

    proc = run_cli(
        "ratings", "import", str(ratings), "--rubric", "prmed-format", "--samples", str(EXAMPLES), env=env, check=False
    )
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert f"accepted {good} ratings" in proc.stdout
    assert "2 bad rows" in proc.stdout
    assert f"{good + 2}" in proc.stdout and "未知样本" in proc.stdout
    assert f"{good + 3}" in proc.stdout and "9 is outside 1..5" in proc.stdout

    raters = run_cli("ratings", "raters", "--rubric", "prmed-format", env=env).stdout.split()
    assert raters == ["human:张医生", "human:李医生", "judge:rules"]

    out = tmp_path / "report"
    proc = run_cli(
        "agreement", "--rubric", "prmed-format", "--raters", "judge:rules,human:*", "--out", str(out),
        "--n-boot", "50", env=env,
    )  # fmt: skip
    assert "prmed-format@1" in proc.stdout and "steps_present" in proc.stdout and "overall" in proc.stdout
    report = json.loads((out / "agreement.json").read_text(encoding="utf-8"))
    assert report["raters"] == ["judge:rules", "human:张医生", "human:李医生"]
    assert report["n_samples"] == len(results) and report["n_boot"] == 50
    pair = next(p for p in report["pairs"] if (p["rater_a"], p["rater_b"]) == ("judge:rules", "human:张医生"))
    assert pair["overall"]["metrics"]["exact"]["value"] == 1.0
    figures = sorted(p.name for p in out.glob("*.png"))
    assert figures == ["agreement_bars.png", "confusion_0.png", "confusion_1.png", "confusion_2.png"]
    assert all((out / name).read_bytes().startswith(PNG) for name in figures)
    page = (out / "agreement.html").read_text(encoding="utf-8")
    assert "human:张医生" in page and page.count('src="data:image/png;base64,') == len(figures)

    # A pattern that matches nobody: the domain error, exit code 2, nothing written.
    proc = run_cli("agreement", "--rubric", "prmed-format", "--raters", "human:赵*", "--out", str(tmp_path / "none"),
                   env=env, check=False)  # fmt: skip
    assert proc.returncode == 2 and "RaterNotFound" in proc.stderr
    assert not (tmp_path / "none").exists()


def test_stability_rescores_the_set_and_stores_every_run(
    env: dict[str, str], db: Path, tmp_path: Path, openai_server: OpenAIServer
) -> None:
    n = 4
    source = tmp_path / "set.jsonl"
    source.write_text("".join(EXAMPLES.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    calls = itertools.count()

    def drifting(request: ChatRequest) -> Verdict:
        # The runs come one after another: run k is the k-th block of n calls; it moves safety by k.
        run = next(calls) // n
        scores = default_scores(request)
        scores["safety"] = (scores["safety"] - 1 + run) % 5 + 1
        return Verdict(scores=scores)

    openai_server.default = drifting
    env = {**env, "RJ_JUDGES_FILE": str(write_judges(tmp_path / "judges.yaml", openai_server))}
    out = tmp_path / "stability.json"
    proc = run_cli(
        "stability", str(source), "--rubric", "prmed@1", "--judge", "loop", "--runs", "3", "--n-boot", "20",
        "--out", str(out), env=env,
    )  # fmt: skip
    assert openai_server.calls == 3 * n  # the cache is off: every run asks the judge again
    assert "self-agreement" in proc.stdout and "judge:loop" in proc.stdout
    assert _ratings_by_run(db, "judge:loop") == {0: n * 13, 1: n * 13, 2: n * 13}
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["runs"] == [0, 1, 2]
    unstable = {a["axis"]: a["unstable_share"] for a in report["axes"]}
    assert unstable["safety"] == 1.0
    assert all(share == 0.0 for axis, share in unstable.items() if axis != "safety")
