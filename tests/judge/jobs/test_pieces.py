"""The small pieces of jobs: streamed line splitting, the resume bitmap and torn lines, summaries, line checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from judge.jobs.ingest import split_lines
from judge.jobs.process import check_line, invalid_outcome
from judge.jobs.summary import Summary
from judge.resume import LineSet, cut_torn_tail, done_lines, record_line
from judge.settings import Settings


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 3, 1000])
async def test_lines_are_numbered_blank_ones_skipped_long_ones_flagged(size: int) -> None:
    data = "第一行\r\n\n  \n第四行\n" + "x" * 50 + "\n末行无换行"
    found = [(n, line) async for n, line in split_lines(chunks(data.encode(), size), max_bytes=20)]
    assert found == [(1, "第一行".encode()), (4, "第四行".encode()), (5, None), (6, "末行无换行".encode())]


async def test_an_overlong_last_line_is_flagged_too() -> None:
    found = [item async for item in split_lines(chunks(b"ok\n" + b"y" * 100, 7), max_bytes=10)]
    assert found == [(1, b"ok"), (2, None)]


def test_line_set_grows_and_counts_once() -> None:
    lines = LineSet()
    for n in (1, 5, 1_000_000, 5):
        lines.add(n)
    assert lines.count == 3
    assert 5 in lines and 1_000_000 in lines and 2 not in lines and 10**9 not in lines


def test_record_lines_are_read_from_the_prefix_or_parsed(tmp_path: Path) -> None:
    assert record_line(b'{"line":42,"outcome":"kept"}') == 42
    assert record_line(b'{"outcome":"kept","line":7}') == 7
    assert record_line(b'{"line":"x"}') is None
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"line":1,"outcome":"kept"}\n{"line":3,"outcome":"kept"}\n{"line":4,"outc')
    done = done_lines([out, tmp_path / "missing.jsonl"])
    assert done.count == 2 and 3 in done and 4 not in done
    assert out.read_bytes().endswith(b'"kept"}\n')
    only_torn = tmp_path / "torn.jsonl"
    only_torn.write_bytes(b'{"line":1')
    cut_torn_tail(only_torn)
    assert only_torn.read_bytes() == b""


def test_summary_adds_merges_and_round_trips() -> None:
    def record(
        outcome: str, scores: dict[str, int | None], failing: list[str], rounds: list[bool] | None = None
    ) -> dict[str, object]:
        body: dict[str, object] = {
            "outcome": outcome,
            "verdict": {"axes": {k: {"score": v} for k, v in scores.items()}, "failing_axes": failing},
        }
        if rounds is not None:
            body["lineage"] = {"rounds": [{"round": i + 1, "passed": p} for i, p in enumerate(rounds)]}
        return body

    a = Summary()
    a.add(record("kept", {"safety": 5, "communication": 5}, [], [False, True]))
    a.add(record("dropped", {"safety": 2, "communication": None}, ["safety"], [False, False, False]))
    b = Summary()
    b.add({"outcome": "invalid", "error": "坏行"})
    b.add(record("dropped", {"safety": 3, "communication": 4}, ["safety", "communication"], [False]))
    merged = Summary.from_json(orjson.loads(orjson.dumps(a.to_json()))).merge(b)
    data = merged.to_json()
    assert data["outcomes"] == {"kept": 1, "dropped": 2, "invalid": 1}
    assert data["pass_rate"] == pytest.approx(1 / 3)
    assert data["axes"]["safety"]["histogram"] == {"1": 0, "2": 1, "3": 1, "4": 0, "5": 1}
    assert data["axes"]["safety"]["pass_rate"] == pytest.approx(1 / 3)
    assert data["axes"]["communication"]["unscored"] == 1
    assert merged.most_failing(1) == [("safety", 2)]
    assert data["rounds"] == {
        "1": {"judged": 3, "passed": 0}, "2": {"judged": 2, "passed": 1}, "3": {"judged": 1, "passed": 0}
    }  # fmt: skip


def test_line_checks_name_the_field() -> None:
    settings = Settings(max_text_chars=10, _env_file=None)  # type: ignore[call-arg]
    good = orjson.dumps({"messages": [{"role": "user", "content": "头疼"}], "response": "多喝水"})
    assert check_line("filter", good, settings) == (good.decode(), None)
    long = orjson.dumps({"messages": [{"role": "user", "content": "头疼"}], "response": "多" * 11})
    assert check_line("filter", long, settings)[1] == "response: 11 characters; the limit is 10"
    assert "messages" in str(check_line("filter", b'{"response": "x"}', settings)[1])
    assert check_line("filter", b"\xff\xfe", settings)[1] == "line: not UTF-8 (invalid start byte at byte 0)"
    assert "prompt" in str(check_line("curate", b'{"id": "x"}', settings)[1])
    assert check_line("curate", orjson.dumps({"prompt": "疼" * 11}), settings)[1] == (
        "prompt: 11 characters; the limit is 10"
    )
    record = invalid_outcome(3, b"\x00bad" + "坏".encode() * 300, "line: nope").record
    assert record["line"] == 3 and "\x00" not in record["raw"] and len(record["raw"]) <= 200


def test_summary_adds_what_judging_and_generating_cost() -> None:
    a = Summary()
    a.add({"outcome": "kept", "usage": {"calls": 1, "prompt_tokens": 900, "cached_tokens": 700}})
    a.add({"outcome": "kept"})  # a cache hit costs nothing
    b = Summary()
    b.add({"outcome": "dropped", "usage": {"calls": 2, "prompt_tokens": 1800, "cached_tokens": 1400, "bad": "x"}})
    b.add({"outcome": "failed", "usage": "坏", "generator_usage": {"calls": 3, "completion_tokens": 600}})
    data = Summary.from_json(orjson.loads(orjson.dumps(a.to_json()))).merge(b).to_json()

    assert data["usage"] == {"calls": 3, "prompt_tokens": 2700, "cached_tokens": 2100}
    assert data["generator_usage"] == {"calls": 3, "completion_tokens": 600}


def test_a_job_can_ask_the_judge_for_scores_only() -> None:
    from judge.jobs.process import JobPlan
    from judge.jobs.schemas import JobOptions
    from judge.profiles import JudgeProfile
    from rubrics.registry import RubricRegistry

    profile = JudgeProfile(name="j", model="m")
    rubric = RubricRegistry().resolve("prmed")
    scores_only = JobPlan("filter", rubric, profile, JobOptions(rationale="none"))
    hidden = JobPlan("filter", rubric, profile, JobOptions(rationale=False))

    assert scores_only.judge_profile.rationale == "none" and scores_only.judge_profile.hash != profile.hash
    assert scores_only.include_rationale is False
    assert hidden.judge_profile is profile and hidden.include_rationale is False
    assert JobPlan("filter", rubric, profile, JobOptions()).include_rationale is True
async def test_a_generator_that_refuses_connections_says_cannot_connect() -> None:
    from judge.jobs.generator import GenerationFailed, Generator
    from judge.profiles import JudgeProfile
    from tests.support.live_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    generator = Generator(JudgeProfile(name="gen", model="m", base_url=url, max_retries=0, temperature=0.7))
    try:
        with pytest.raises(GenerationFailed, match="cannot connect to generator .*connection refused"):
            await generator.generate([{"role": "user", "content": "我头疼三天了"}])
    finally:
        await generator.aclose()
