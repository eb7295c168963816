"""Hard edges: unstorable text, out-of-range integers, body sizes and caps answer 4xx naming the field, never 500.

Every bad input here used to answer 500 or cost other items (issue 10). Chinese text throughout.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.redact import RedactQueryKeys, redact
from judge.store.models import VerdictRow
from rubrics.registry import RubricRegistry
from tests.api.conftest import AppClient
from tests.api.samples import PATIENT_ZH, RESPONSE_ZH, sample, score_body
from tests.api.test_rewards import body as rewards_body
from tests.api.test_rewards import rollout


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    return error


async def _verdicts(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(VerdictRow))).scalar_one())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"response": "胸口疼\u0000得厉害"}, "samples[1].response"),
        ({"messages": [{"role": "user", "content": "心口\u0000窝疼"}]}, "samples[1].messages[0].content"),
        ({"metadata": {"来源": ["门诊\u0000"]}}, "samples[1].metadata"),
        ({"id": "样本\u0000"}, "samples[1].id"),
    ],
)
async def test_nul_in_a_sample_is_a_422_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient, pg_engine: AsyncEngine, changes: dict[str, Any], field: str
) -> None:
    resp = await client.post("/v1/score", json=score_body(sample(0), sample(1, **changes)))
    error = _error(resp, 422)
    assert error["field"] == field
    assert "NUL" in error["message"]
    assert await _verdicts(pg_engine) == 0


async def test_a_nul_reward_item_is_invalid_and_costs_the_others_nothing(
    client: httpx.AsyncClient, pg_engine: AsyncEngine
) -> None:
    items = [rollout(0, k) for k in range(4)]
    items[2]["completion"] = f"<think>想想\u0000</think>{RESPONSE_ZH}"
    resp = await client.post("/v1/rewards", json=rewards_body(*items))
    assert resp.status_code == 200, resp.text
    statuses = [item["status"] for item in resp.json()["items"]]
    assert statuses[2] == "invalid"
    assert [s for i, s in enumerate(statuses) if i != 2] == ["ok"] * 3
    assert resp.json()["usage"]["pending_writes"] == 0
    assert await _verdicts(pg_engine) == 3


async def test_a_nul_openrlhf_query_is_flagged_and_the_rest_rewarded(client: httpx.AsyncClient) -> None:
    good = f"<|im_start|>user\n{PATIENT_ZH}<|im_end|>\n<|im_start|>assistant\n{RESPONSE_ZH}<|im_end|>"
    bad = good.replace("别着急", "别\u0000着急")
    resp = await client.post("/get_reward?judge=loop", json={"query": [good, bad]})
    assert resp.status_code == 200, resp.text
    payload = resp.json()
    assert payload["extra_logs"]["judge_failed"] == [0.0, 1.0]
    assert len(payload["rewards"]) == 2


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/verdicts/a%00b", "path"),
        ("/v1/jobs/a%00b", "path"),
        ("/v1/rubrics/prmed%00", "path"),
        ("/v1/jobs?state=done%00", "state"),
    ],
)
async def test_nul_in_a_path_or_query_is_a_422(client: httpx.AsyncClient, url: str, field: str) -> None:
    assert _error(await client.get(url), 422)["field"] == field


async def test_nul_in_a_ratings_row_rejects_that_row_only(client: httpx.AsyncClient) -> None:
    h = "a" * 64
    csv = f"sample_hash,rater,axis,score\n{h},dr_王,safety,4\n{h},dr_\u0000李,safety,3\n"
    resp = await client.post("/v1/ratings", content=csv.encode(), headers={"content-type": "text/csv"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1
    assert resp.json()["errors"][0]["field"] == "rater"


async def test_a_cr_only_ratings_file_is_counted_by_its_lines(make_client: AppClient) -> None:
    h = "b" * 64
    rows = "\r".join(f"{h},dr_{i},safety,4" for i in range(5))
    async with make_client(max_ratings_per_request=3) as c:
        resp = await c.post(
            "/v1/ratings",
            content=f"sample_hash,rater,axis,score\r{rows}\r".encode(),
            headers={"content-type": "text/csv"},
        )
    assert _error(resp, 413)["field"] == "file"


@pytest.mark.parametrize(
    ("method", "url", "json", "field"),
    [
        ("get", "/v1/jobs?offset=575207384587722167418880", None, "offset"),
        ("get", "/v1/agreement?seed=99999999999999999999", None, "seed"),
        ("post", "/v1/reward-models/tiny/activate", {"version": -475162397787}, "version"),
        ("post", "/v1/reward-models/tiny/activate", {"version": 2**31}, "version"),
    ],
)
async def test_out_of_range_integers_are_422s(
    client: httpx.AsyncClient, method: str, url: str, json: Any, field: str
) -> None:
    resp = await getattr(client, method)(url, **({"json": json} if json is not None else {}))
    assert _error(resp, 422)["field"] == field


def _rubric(**changes: Any) -> dict[str, Any]:
    rubric = RubricRegistry().resolve("prmed").model_dump(mode="json")
    rubric.update(name="儿科".encode().hex()[:0] + "peds-edge", version=1)
    rubric["axes"] = rubric["axes"][:2]
    rubric["reward_policy"] = {"weights": {}, "gates": []}
    rubric.update(changes)
    return rubric


@pytest.mark.parametrize(
    ("mutate", "field_part"),
    [
        (lambda r: r["axes"][0].update(weight=1e308), "weight"),
        (lambda r: r["layers"][0].update(weight=1e7), "weight"),
        (lambda r: r.update(version=2147483648), "version"),
        (lambda r: r["axes"][0]["anchors"]["1"].update(zh="长" * 9000), "zh"),
        (lambda r: r["axes"][0]["anchors"]["1"].update(zh="忽视\u0000"), "zh"),
        (lambda r: r.update(axes=[{**r["axes"][0], "key": f"a{i}"} for i in range(65)]), "axes"),
    ],
)
async def test_rubrics_past_their_bounds_are_422s(client: httpx.AsyncClient, mutate: Any, field_part: str) -> None:
    rubric = _rubric()
    mutate(rubric)
    error = _error(await client.post("/v1/rubrics", json=rubric), 422)
    assert field_part in (error["field"] or "")


async def test_infinity_in_a_rubric_is_refused_not_stored(client: httpx.AsyncClient) -> None:
    raw = httpx.Request("POST", "http://x", json=_rubric()).content.replace(b'"weight":1.0', b'"weight":Infinity', 1)
    resp = await client.post("/v1/rubrics", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code in (400, 422), resp.text
    assert (await client.get("/v1/rubrics/peds-edge")).status_code == 404


async def test_every_route_has_a_body_limit_in_its_own_shape(make_client: AppClient) -> None:
    big = {"query": ["x" * 3000]}
    async with make_client(max_body_bytes=2048) as c:
        score = await c.post("/v1/score", json=score_body(sample(0, response="长" * 2000)))
        assert _error(score, 413)["field"] == "body"
        reward = await c.post("/get_reward", json=big)
        assert reward.status_code == 413
        assert "RJ_MAX_BODY_BYTES" in reward.json()["detail"]
        classify = await c.post("/classify", json={"input": "长" * 2000})
        assert classify.status_code == 413
        assert classify.json()["error"]["code"] == 413
        # A chunked body (no Content-Length) is counted as it arrives.

        async def chunks() -> Any:
            for _ in range(4):
                yield b'{"query": ["' + b"x" * 1000

        streamed = await c.post("/get_reward", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


async def test_get_reward_is_capped_like_v1_rewards(make_client: AppClient) -> None:
    async with make_client(max_samples_per_request=3) as c:
        resp = await c.post("/get_reward", json={"query": ["q"] * 4})
    assert resp.status_code == 413
    assert resp.json() == {"detail": "4 queries in one request; the limit is 3"}


async def test_405_carries_allow(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/v1/score")
    assert resp.status_code == 405
    assert "POST" in resp.headers["allow"]


async def test_openapi_references_all_resolve_and_metrics_is_text(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    text = str(document)
    assert "#/$defs/" not in text
    schemas = document["components"]["schemas"]
    for name in ("SampleIn", "Message", "ScoreOptions", "RewardItemIn", "JobOptions", "JobSource"):
        assert name in schemas, name
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    assert refs
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs)
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert document["paths"]["/v1/score"]["post"]["requestBody"]["required"] is True


def test_query_string_keys_are_redacted_from_log_records() -> None:
    assert redact("POST /get_reward?api_key=s3cret&rubric=prmed") == "POST /get_reward?api_key=***&rubric=prmed"
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "POST", "/classify?x=1&api_key=钥匙s3cret", "1.1", 200), None,
    )  # fmt: skip
    assert RedactQueryKeys().filter(record)
    assert "s3cret" not in record.getMessage()
    assert "/classify?x=1&api_key=***" in record.getMessage()
    assert isinstance(record.args, tuple)
    assert record.args[4] == 200  # uvicorn unpacks the arguments: their types stay


async def test_nul_items_in_a_job_upload_are_invalid_items_and_the_rest_is_queued(
    make_client: AppClient, redis_url: str, redis_prefix: str
) -> None:
    import orjson

    good = orjson.dumps(sample(0))
    escaped = orjson.dumps(sample(1, response="胸口\u0000疼"))  # the JSON escape \u0000
    raw_nul = orjson.dumps(sample(2)).replace("别着急".encode(), b"\x00")  # a raw NUL byte: not even JSON
    body = b"\n".join([good, escaped, raw_nul]) + b"\n"
    async with make_client(redis_url=redis_url, redis_prefix=redis_prefix) as c:
        resp = await c.post(
            "/v1/jobs?kind=filter&judge=loop", content=body, headers={"content-type": "application/x-ndjson"}
        )
        assert resp.status_code == 202, resp.text
        counts = resp.json()["counts"]
        assert counts["total"] == 3
        assert counts["invalid"] == 2


async def test_nul_in_a_job_source_path_is_a_422(make_client: AppClient, redis_url: str, redis_prefix: str) -> None:
    job = {"kind": "filter", "judge": "loop", "source": {"path": "输入\u0000.jsonl"}}
    async with make_client(redis_url=redis_url, redis_prefix=redis_prefix) as c:
        assert _error(await c.post("/v1/jobs", json=job), 422)["field"] == "source.path"


async def test_nul_in_looked_up_names_is_a_4xx_not_a_500(client: httpx.AsyncClient) -> None:
    # Found by schemathesis: a NUL in a value the store is queried with made PostgreSQL refuse the query.
    classify = await client.post("/classify", json={"model": "奖励模型\u0000", "input": "胸口疼"})
    assert classify.status_code == 400
    assert classify.json()["error"]["param"] == "model"
    feedback = await client.post("/v1/feedback", json={"verdict_id": "ab\u0000cd"})
    assert _error(feedback, 422)["field"] == "verdict_id"


def test_the_database_refusing_nul_is_recognised_as_unstorable_text() -> None:
    from sqlalchemy.exc import DataError

    from judge.durability.outage import is_store_outage, is_unstorable_text

    refused = DataError("SELECT 1", {}, Exception('invalid byte sequence for encoding "UTF8": 0x00'))
    assert is_unstorable_text(refused)
    assert not is_store_outage(refused)
    assert not is_unstorable_text(DataError("SELECT 1", {}, Exception("value too long for type character varying")))
