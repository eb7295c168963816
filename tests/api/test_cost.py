"""Cost per verdict through the API: rationale per request, cached tokens and hedges in usage, token metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import AppClient, stored_usage, write_judges
from tests.api.samples import sample, score_body
from tests.api.test_rewards import body, rollout
from tests.support.openai_server import OpenAIServer, Slow, Verdict


async def test_request_rationale_none_asks_for_scores_only_and_is_cached_apart(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    resp = await client.post("/v1/score", json=score_body(sample(0), sample(1), rationale="none"))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    schema = openai_server.last_request.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["axes"]["properties"]["safety"] == {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    for result in data["results"]:
        assert all(axis["status"] == "ok" and "rationale" not in axis for axis in result["axes"].values())
    usage = data["usage"]
    assert usage["calls"] == 2 and usage["hedges"] == 0
    assert set(usage) >= {"prompt_tokens", "cached_tokens", "completion_tokens"}

    # The same samples with the profile's own (full) rationales: another prompt, so judged again.
    full = (await client.post("/v1/score", json=score_body(sample(0), sample(1)))).json()
    assert [r["cached"] for r in full["results"]] == [False, False]
    assert all(axis["rationale"] for axis in full["results"][0]["axes"].values())
    assert openai_server.calls == 4
    # And each is a hit under its own mode.
    again = (await client.post("/v1/score", json=score_body(sample(0), rationale="none"))).json()
    assert again["results"][0]["cached"] is True and openai_server.calls == 4


async def test_usage_reports_cached_prompt_tokens_and_metrics_count_them(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    data = (await client.post("/v1/score", json=score_body(*(sample(i) for i in range(4))))).json()
    usage = data["usage"]
    # Every prompt after the first finds the system message, rubric and format in the loopback's prefix cache.
    assert usage["cached_tokens"] >= 0.6 * usage["prompt_tokens"]
    metrics = (await client.get("/metrics")).text
    assert 'rj_judge_tokens_total{judge="loop",kind="cached"}' in metrics
    assert 'rj_judge_tokens_total{judge="loop",kind="prompt"}' in metrics


async def test_rewards_rationale_none_and_a_hedged_stall(
    make_client: AppClient, tmp_path: Path, openai_server: OpenAIServer
) -> None:
    judges = write_judges(tmp_path / "hedged.yaml", openai_server, hedge_after_ms=200, timeout_s=30)
    openai_server.script(Slow(30.0), *[Verdict()] * 3)
    async with make_client(judges_file=judges) as client:
        resp = await client.post(
            "/v1/rewards", json=body(*(rollout(0, k) for k in range(3)), rationale="none", deadline_ms=20_000)
        )
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        # The stored verdicts keep the hedged extra call (read back from the store, not from the response).
        stored = await stored_usage(client, [item["verdict_id"] for item in data["items"]])
    assert stored["hedges"] == 1 and stored["calls"] == 3
    assert [item["status"] for item in data["items"]] == ["ok"] * 3
    assert data["usage"]["hedges"] == 1 and data["usage"]["calls"] == 3
    assert openai_server.calls == 4
    # Each group reports its own cost, the hedged extra call included.
    assert sum(g["hedges"] for g in data["groups"]) == 1
    assert sum(g["calls"] for g in data["groups"]) == 3
    assert all(0 <= g["cached_tokens"] <= g["prompt_tokens"] for g in data["groups"])
