"""Ratings import: validation against the rubric, errors with line numbers, rater patterns."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from judge.agreement.errors import InvalidRatingsFile, RaterNotFound
from judge.agreement.ratings import (
    Rating,
    expand_raters,
    normalise_rater,
    parse_ratings,
    read_ratings,
    verdict_ratings,
)
from judge.verdicts import AxisResult, AxisStatus, Usage, Verdict
from rubrics.schema import Rubric

HASH = "ab" * 32


def test_csv_import_keeps_good_rows_and_reports_bad_lines(rubric: Rubric) -> None:
    text = (
        "sample_id,rater,axis,score,备注\n"
        "病例-001,张医生,safety,5,很好\n"  # line 2: fine; a rater without a kind is a human
        "病例-001,张医生,safety,4,重复\n"  # 3: duplicate of line 2
        "病例-002,李医生,安全性,6,\n"  # 4: Chinese axis title is fine, score out of range
        "病例-003,王医生,bedside_manner,3,\n"  # 5: unknown axis
        "病例-004,王医生,completeness,4.5,\n"  # 6: not an integer
        "病例-005,,completeness,4,\n"  # 7: missing rater
        '"病例-006\n(续)",judge:deepseek,Completeness,4.0,\n'  # 8-9: quoted newline; English title, 4.0
        "病例-007,赵医生,communication,三,\n"  # 10: not a number
    )
    result = parse_ratings(text, rubric, format="csv")
    assert [(row.line, row.rater, row.axis, row.score) for row in result.rows] == [
        (2, "human:张医生", "safety", 5),
        (8, "judge:deepseek", "completeness", 4),
    ]
    assert result.rows[1].sample_id == "病例-006\n(续)"
    assert [(e.line, e.field) for e in result.errors] == [
        (3, None),
        (4, "score"),
        (5, "axis"),
        (6, "score"),
        (7, "rater"),
        (10, "score"),
    ]
    assert "duplicate of line 2" in result.errors[0].message
    assert str(result.errors[1]) == "line 4, score: 6 is outside 1..5"
    assert not result.ok


def test_csv_missing_column_is_one_header_error(rubric: Rubric) -> None:
    result = parse_ratings("sample_id,rater,score\n病例-1,张医生,4\n", rubric, format="csv")
    assert result.rows == []
    assert [(e.line, e.field) for e in result.errors] == [(1, "axis")]
    no_key = parse_ratings("rater,axis,score\n张医生,safety,4\n", rubric, format="csv")
    assert [(e.line, e.field) for e in no_key.errors] == [(1, "sample_id")]


def test_jsonl_import_by_hash_with_errors(rubric: Rubric) -> None:
    lines = [
        orjson.dumps({"sample_hash": HASH.upper(), "rater": "human:陈医生", "axis": "safety", "score": 3}),
        b"",
        b"{not json",
        orjson.dumps(["a", "list"]),
        orjson.dumps({"sample_hash": "xyz", "rater": "陈医生", "axis": "safety", "score": 3}),
        orjson.dumps({"sample_id": 17, "rater": "陈医生", "axis": "safety", "score": True}),
        orjson.dumps({"sample_id": "s-1", "rater": "陈医生", "axis": "safety", "score": 2, "run": 1}),
        orjson.dumps({"sample_id": "s-2", "rater": "陈 医生", "axis": "safety", "score": 2}),
        orjson.dumps({"sample_id": "s-2", "rater": "rm:prmed-rm@2", "axis": "safety"}),
    ]
    result = parse_ratings("\n".join(line.decode() for line in lines), rubric, format="jsonl")
    assert [(row.line, row.sample_key, row.rater, row.run) for row in result.rows] == [
        (1, HASH, "human:陈医生", 0),
        (7, "id:s-1", "human:陈医生", 1),
    ]
    assert [(e.line, e.field) for e in result.errors] == [
        (3, None),
        (4, None),
        (5, "sample_hash"),
        (6, "score"),
        (8, "rater"),
        (9, "score"),
    ]
    assert "invalid JSON" in result.errors[0].message


def test_resolve_sample_ids_turns_ids_into_hashes(rubric: Rubric) -> None:
    text = "sample_id,rater,axis,score\n病例-1,张医生,safety,4\n病例-2,张医生,safety,5\n"
    result = parse_ratings(text, rubric, format="csv").resolve_sample_ids({"病例-1": HASH})
    assert [row.sample_hash for row in result.rows] == [HASH]
    assert [(e.line, e.field, e.message) for e in result.errors] == [(3, "sample_id", "unknown sample '病例-2'")]
    assert result.ratings()[0].sample_hash == HASH


def test_read_ratings_detects_format_and_encoding(rubric: Rubric, tmp_path: Path) -> None:
    path = tmp_path / "医生评分.csv"
    path.write_bytes("\ufeffsample_hash,rater,axis,score\n".encode() + f"{HASH},张医生,safety,4\n".encode())
    assert [r.rater for r in read_ratings(path, rubric).rows] == ["human:张医生"]
    bad = tmp_path / "ratings.csv"
    bad.write_bytes(b"sample_hash,rater,axis,score\n" + "x,张医生,safety,4\n".encode("gbk"))
    with pytest.raises(InvalidRatingsFile):
        read_ratings(bad, rubric)
    with pytest.raises(InvalidRatingsFile):
        read_ratings(tmp_path / "ratings.xlsx", rubric)


def test_rater_names_and_patterns() -> None:
    assert normalise_rater(" 张医生 ") == "human:张医生"
    assert normalise_rater("judge:deepseek") == "judge:deepseek"
    assert normalise_rater("dr:li") == "human:dr:li"
    available = ["judge:b", "human:张医生", "judge:a", "human:李医生", "rm:prmed@1"]
    assert expand_raters("judge:a,judge:b,human:*", available) == ["judge:a", "judge:b", "human:张医生", "human:李医生"]
    assert expand_raters(["judge:*", "judge:a"], available) == ["judge:a", "judge:b"]
    with pytest.raises(RaterNotFound):
        expand_raters("human:王*", available)


def test_a_verdict_becomes_ratings_of_its_ok_axes() -> None:
    verdict = Verdict(
        id="v1",
        cache_key="c" * 64,
        sample_hash=HASH,
        rubric_ref="prmed-test@1",
        rubric_hash="d" * 64,
        judge="deepseek",
        profile_hash="e" * 64,
        axes={
            "safety": AxisResult(score=4, expected=4.3, status=AxisStatus.ok),
            "completeness": AxisResult.failed(AxisStatus.parse_error, "no score"),
        },
        usage=Usage(),
        latency_ms=12.0,
        created_at=0.0,
    )
    assert verdict_ratings(verdict, run=2) == [
        Rating(sample_hash=HASH, rater="judge:deepseek", axis="safety", score=4, run=2)
    ]
