"""GET /v1/verdicts/{id} returns the whole usage a verdict was judged with: it is read back from the store."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.conftest import AppClient, write_judges
from tests.api.samples import sample, score_body
from tests.api.test_rewards import body, rollout
from tests.support.openai_server import OpenAIServer, Slow, Verdict

USAGE_KEYS = ("calls", "prompt_tokens", "cached_tokens", "completion_tokens", "retries", "hedges")


async def _stored_usage(client: httpx.AsyncClient, verdict_ids: list[str]) -> dict[str, int]:
    total = dict.fromkeys(USAGE_KEYS, 0)
    for verdict_id in verdict_ids:
        resp = await client.get(f"/v1/verdicts/{verdict_id}")
        assert resp.status_code == 200, resp.text
        for key in USAGE_KEYS:
            total[key] += resp.json()["usage"][key]
    return total


async def test_stored_verdicts_keep_the_cached_tokens_the_response_reported(client: httpx.AsyncClient) -> None:
    data = (await client.post("/v1/score", json=score_body(*(sample(i) for i in range(4))))).json()
    # The loopback judge's prefix cache serves the shared part of every prompt after the first.
    assert data["usage"]["cached_tokens"] > 0
    stored = await _stored_usage(client, [result["verdict_id"] for result in data["results"]])
    assert stored == {key: data["usage"][key] for key in USAGE_KEYS}


async def test_a_hedged_verdict_keeps_its_extra_call(
    make_client: AppClient, tmp_path: Path, openai_server: OpenAIServer
) -> None:
    judges = write_judges(tmp_path / "hedged.yaml", openai_server, hedge_after_ms=200, timeout_s=30)
    openai_server.script(Slow(30.0), *[Verdict()] * 3)
    async with make_client(judges_file=judges) as client:
        resp = await client.post("/v1/rewards", json=body(*(rollout(0, k) for k in range(3)), deadline_ms=20_000))
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["usage"]["hedges"] == 1
        stored = await _stored_usage(client, [item["verdict_id"] for item in data["items"]])
    assert stored["hedges"] == 1 and stored["calls"] == data["usage"]["calls"] == 3
