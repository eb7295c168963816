"""GET /v1/verdicts/{id} returns the whole usage a verdict was judged with: it is read back from the store."""

from __future__ import annotations

import httpx

from tests.api.conftest import USAGE_KEYS, stored_usage
from tests.api.samples import sample, score_body


async def test_stored_verdicts_keep_the_cached_tokens_the_response_reported(client: httpx.AsyncClient) -> None:
    data = (await client.post("/v1/score", json=score_body(*(sample(i) for i in range(4))))).json()
    # The loopback judge's prefix cache serves the shared part of every prompt after the first.
    assert data["usage"]["cached_tokens"] > 0
    stored = await stored_usage(client, [result["verdict_id"] for result in data["results"]])
    assert stored == {key: data["usage"][key] for key in USAGE_KEYS}
