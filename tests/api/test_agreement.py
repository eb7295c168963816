"""POST /v1/ratings and GET /v1/agreement: two loopback judges run through /v1/score, and physicians' ratings."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.agreement import service as agreement_service
from judge.store.models import RatingRow
from tests.api.samples import sample, score_body
from tests.support.openai_server import ChatRequest, OpenAIServer, Verdict, default_scores

N_SAMPLES = 12
# Judge b shifts every safety score by one level (cyclically) and agrees with judge a elsewhere.
SHIFTED = "safety"


@pytest.fixture
def judges_file(tmp_path: Path, openai_server: OpenAIServer) -> Path:
    """Two judge profiles on the loopback server, told apart by model name."""

    def answer(request: ChatRequest) -> Verdict:
        scores = default_scores(request)
        if request.body.get("model") == "model-b":
            scores[SHIFTED] = scores[SHIFTED] % 5 + 1
        return Verdict(scores=scores)

    openai_server.default = answer
    common = {"backend": "openai", "base_url": openai_server.url, "concurrency": 16, "timeout_s": 5, "max_retries": 1}
    judges = [{**common, "name": "a", "model": "model-a"}, {**common, "name": "b", "model": "model-b"}]
    path = tmp_path / "judges.yaml"
    path.write_text(yaml.safe_dump({"judges": judges}), encoding="utf-8")
    return path


@pytest.fixture
def samples() -> list[dict[str, Any]]:
    return [sample(i) for i in range(N_SAMPLES)]


async def _score(client: httpx.AsyncClient, judge: str, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resp = await client.post("/v1/score", json=score_body(*samples, judge=judge))
    assert resp.status_code == 200, resp.text
    results: list[dict[str, Any]] = resp.json()["results"]
    return results


def _copy(results: list[dict[str, Any]], rater: str, *, by: str = "sample_id") -> list[dict[str, Any]]:
    """A rater who gives exactly the judge's scores."""
    return [
        {"sample_id" if by == "sample_id" else "sample_hash": r["id"] if by == "sample_id" else r["sample_hash"],
         "rater": rater, "axis": axis, "score": a["score"]}
        for r in results
        for axis, a in r["axes"].items()
    ]  # fmt: skip


async def _rating_rows(pg_sessions: async_sessionmaker[AsyncSession]) -> int:
    async with pg_sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(RatingRow)) or 0)


async def test_judges_scored_through_the_api_and_an_imported_physician_agree_per_axis(
    client: httpx.AsyncClient, samples: list[dict[str, Any]], pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    judged_a = await _score(client, "a", samples)
    judged_b = await _score(client, "b", samples)
    n_axes = len(judged_a[0]["axes"])

    # The judges are raters as soon as they have scored: agreement needs no import for them.
    judges_only = await client.get("/v1/agreement", params={"rubric": "prmed", "raters": "judge:*", "n_boot": 0})
    assert judges_only.status_code == 200, judges_only.text
    assert judges_only.json()["raters"] == ["judge:a", "judge:b"]

    # 张医生 copies judge a, keyed by the request's sample ids (resolved through the samples sent along).
    ratings = _copy(judged_a, "张医生")
    ratings += [
        {"sample_id": "样本-0", "rater": "李医生", "axis": "不存在的维度", "score": 3},
        {"sample_id": "样本-99", "rater": "李医生", "axis": "safety", "score": 3},
        {"sample_id": "样本-1", "rater": "李医生", "axis": "安全性", "score": 6},
    ]
    resp = await client.post("/v1/ratings", json={"rubric": "prmed", "ratings": ratings, "samples": samples})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["rubric"] == "prmed@1"
    assert body["accepted"] == N_SAMPLES * n_axes
    assert body["raters"] == {"human:张医生": N_SAMPLES * n_axes}
    first_bad = N_SAMPLES * n_axes + 1
    assert [(e["line"], e["field"]) for e in body["errors"]] == [
        (first_bad, "axis"),
        (first_bad + 1, "sample_id"),
        (first_bad + 2, "score"),
    ]
    assert "样本-99" in body["errors"][1]["message"]

    resp = await client.get(
        "/v1/agreement", params={"rubric": "prmed", "raters": "judge:a,judge:b,human:*", "n_boot": 30, "seed": 1}
    )
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["raters"] == ["judge:a", "judge:b", "human:张医生"]
    assert report["n_samples"] == N_SAMPLES
    assert report["n_boot"] == 30 and report["seed"] == 1
    assert [g["axis"] for g in report["group"]] == list(judged_a[0]["axes"])
    assert all(set(g["metrics"]) >= {"alpha_ordinal", "icc2_1", "qwk", "exact"} for g in report["group"])
    pairs = {(p["rater_a"], p["rater_b"]): p for p in report["pairs"]}
    copy = {row["axis"]: row for row in pairs[("judge:a", "human:张医生")]["axes"]}
    judges = {row["axis"]: row for row in pairs[("judge:a", "judge:b")]["axes"]}
    for axis, row in copy.items():
        assert row["n"] == N_SAMPLES
        assert row["metrics"]["exact"]["value"] == 1.0
        assert sum(map(sum, row["confusion"])) == N_SAMPLES
        # The judges' confusion matrix is built from the scores the API returned.
        expected = [[0] * 5 for _ in range(5)]
        for a, b in zip(judged_a, judged_b, strict=True):
            expected[a["axes"][axis]["score"] - 1][b["axes"][axis]["score"] - 1] += 1
        assert judges[axis]["confusion"] == expected
        assert judges[axis]["metrics"]["exact"]["value"] == (0.0 if axis == SHIFTED else 1.0)
    # With bootstrap CIs around the point estimate.
    alpha = next(g for g in report["group"] if g["axis"] == "medical_accuracy")["metrics"]["alpha_ordinal"]
    assert alpha["low"] <= alpha["value"] <= alpha["high"]

    # Importing the same ratings again updates them in place.
    rows_before = await _rating_rows(pg_sessions)
    again = await client.post("/v1/ratings", json={"rubric": "prmed", "ratings": ratings, "samples": samples})
    assert again.json()["accepted"] == N_SAMPLES * n_axes
    # Only the physician's rows: the judges' ratings are read from their verdicts, not stored again.
    assert await _rating_rows(pg_sessions) == rows_before == N_SAMPLES * n_axes


async def test_a_csv_upload_by_content_hash_reports_bad_rows_by_line(
    client: httpx.AsyncClient, samples: list[dict[str, Any]]
) -> None:
    judged = await _score(client, "a", samples[:3])
    lines = ["sample_hash,rater,axis,score"]
    lines += [f"{r['sample_hash']},王医生,{axis},{a['score']}" for r in judged for axis, a in r["axes"].items()]
    good = len(lines) - 1
    lines += [
        f"{judged[0]['sample_hash']},王医生,safety,四",  # line good + 2
        "不是哈希,王医生,safety,3",
        f"{judged[0]['sample_hash']},王 医生,safety,3",
    ]
    resp = await client.post(
        "/v1/ratings",
        params={"rubric": "prmed"},
        content="\n".join(lines).encode(),
        headers={"content-type": "text/csv; charset=utf-8"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == good
    assert [(e["line"], e["field"]) for e in body["errors"]] == [
        (good + 2, "score"),
        (good + 3, "sample_hash"),
        (good + 4, "rater"),
    ]
    report = (await client.get("/v1/agreement", params={"raters": "judge:a,human:王医生", "n_boot": 0})).json()
    assert report["n_samples"] == 3
    assert report["pairs"][0]["overall"]["metrics"]["exact"]["value"] == 1.0


async def test_jsonl_upload_and_ids_without_samples(client: httpx.AsyncClient) -> None:
    body = b'{"sample_id": "\xe6\xa0\xb7\xe6\x9c\xac-0", "rater": "x", "axis": "safety", "score": 3}\n'
    resp = await client.post("/v1/ratings", content=body, headers={"content-type": "application/x-ndjson"})
    # An upload carries no samples, so an id cannot be placed; nothing valid is a 422 naming the field.
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["type"] == "NoValidRatings" and error["field"] == "sample_id"
    assert "line 1" in error["message"] and "样本-0" in error["message"]


async def test_nothing_valid_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    bad = [{"sample_hash": "a" * 64, "rater": "张医生", "axis": "safety", "score": 9}]
    resp = await client.post("/v1/ratings", json={"rubric": "prmed", "ratings": bad})
    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "ratings[0].score"

    resp = await client.post("/v1/ratings", json={"rubric": "prmed", "ratings": []})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "ratings"

    resp = await client.post("/v1/ratings", json={"rubric": "prmed", "ratings": bad, "surplus": 1})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "surplus"

    resp = await client.post("/v1/ratings", json={"rubric": "no-such-rubric", "ratings": bad})
    assert resp.status_code == 404 and resp.json()["error"]["field"] == "rubric"

    resp = await client.post("/v1/ratings", content=b"<xml/>", headers={"content-type": "application/xml"})
    assert resp.status_code == 415 and resp.json()["error"]["field"] == "content-type"

    resp = await client.post(
        "/v1/ratings", params={"rubric": "prmed"}, content=b"\xff\xfe", headers={"content-type": "text/csv"}
    )
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "file"


async def test_too_many_ratings_is_a_413(make_client: Any) -> None:
    rating = {"sample_hash": "a" * 64, "rater": "张医生", "axis": "safety", "score": 3}
    async with make_client(max_ratings_per_request=2) as small:
        resp = await small.post("/v1/ratings", json={"ratings": [rating] * 3})
    assert resp.status_code == 413 and resp.json()["error"]["field"] == "ratings"


async def test_agreement_errors_name_the_parameter(client: httpx.AsyncClient, samples: list[dict[str, Any]]) -> None:
    resp = await client.get("/v1/agreement", params={"raters": "*"})
    assert resp.status_code == 404 and resp.json()["error"]["field"] == "raters"  # no ratings at all yet

    await _score(client, "a", samples[:4])
    resp = await client.get("/v1/agreement", params={"raters": "judge:a,human:*"})
    assert resp.status_code == 404
    assert resp.json()["error"] == {
        "type": "RaterNotFound",
        "message": "no ratings by 'human:*' under this rubric",
        "field": "raters",
    }
    resp = await client.get("/v1/agreement", params={"raters": "judge:a"})
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "NotEnoughRatings" and resp.json()["error"]["field"] == "raters"

    resp = await client.get("/v1/agreement", params={"raters": "judge:*", "n_boot": 2001})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "n_boot"
    resp = await client.get("/v1/agreement", params={"raters": "judge:*", "n_boot": -1})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "n_boot"
    resp = await client.get("/v1/agreement", params={"rubric": "no-such-rubric"})
    assert resp.status_code == 404


async def test_agreement_is_computed_off_the_event_loop(
    client: httpx.AsyncClient, samples: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _score(client, "a", samples[:4])
    await _score(client, "b", samples[:4])
    threads: list[int] = []
    compute = agreement_service.agreement_from_matrix

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return compute(*args, **kwargs)

    monkeypatch.setattr(agreement_service, "agreement_from_matrix", recording)
    resp = await client.get("/v1/agreement", params={"raters": "judge:*"})
    assert resp.status_code == 200, resp.text
    # Not the loop's thread; and the API's default number of resamples, below the CLI's.
    assert threads and threads[0] != threading.get_ident()
    assert resp.json()["n_boot"] == 200
