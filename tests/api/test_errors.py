"""Bad input gets a clear 4xx in one shape, naming the field; never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.samples import sample, score_body


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"type", "message", "field"}
    assert error["message"]
    return error


async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/score", content=b'{"judge": "loop", "samples": [', headers={"content-type": "application/json"}
    )
    assert _error(resp, 400)["type"] == "MalformedJSON"


async def test_unknown_rubric_and_judge_are_404s_naming_the_field(client: httpx.AsyncClient) -> None:
    assert _error(await client.post("/v1/score", json=score_body(sample(), rubric="no-such")), 404)["field"] == "rubric"
    # A reference that is not ``name`` or ``name@version`` at all is invalid input, not a missing rubric.
    assert _error(await client.post("/v1/score", json=score_body(sample(), rubric="量表")), 422)["field"] == "rubric"
    assert _error(await client.post("/v1/score", json=score_body(sample(), rubric="prmed@9")), 404)["field"] == "rubric"
    assert _error(await client.post("/v1/score", json=score_body(sample(), judge="nobody")), 404)["field"] == "judge"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"messages": "你好"}, "samples[0].messages"),
        ({"messages": [{"role": "doctor", "content": "你好"}]}, "samples[0].messages[0].role"),
        ({"response": 42}, "samples[0].response"),
        ({"messages": []}, "samples[0].messages"),
    ],
)
async def test_wrong_types_are_422s_naming_the_field(
    client: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    error = _error(await client.post("/v1/score", json=score_body(sample(**changes))), 422)
    assert error["field"] == field


async def test_a_sample_with_both_completion_and_response_is_a_422(client: httpx.AsyncClient) -> None:
    error = _error(await client.post("/v1/score", json=score_body(sample(completion="<think>x</think>y"))), 422)
    assert error["field"].startswith("samples[0]")


async def test_limits_are_413s_naming_the_field(make_client: Any) -> None:
    async with make_client(max_samples_per_request=2, max_text_chars=300) as c:
        too_many = await c.post("/v1/score", json=score_body(sample(0), sample(1), sample(2)))
        assert _error(too_many, 413)["field"] == "samples"
        too_long = await c.post("/v1/score", json=score_body(sample(0, response="很长" * 200)))
        assert _error(too_long, 413)["field"] == "samples[0].response"


async def test_a_judge_whose_api_key_is_unset_is_a_503(client: httpx.AsyncClient) -> None:
    error = _error(await client.post("/v1/score", json=score_body(sample(), judge="needs-key")), 503)
    assert error["field"] == "judge"
    assert "RJ_TEST_SURELY_UNSET_KEY" in error["message"]


async def test_unknown_verdict_is_a_404(client: httpx.AsyncClient) -> None:
    assert _error(await client.get("/v1/verdicts/nope"), 404)["type"] == "VerdictNotFound"


async def test_unknown_option_is_a_422(client: httpx.AsyncClient) -> None:
    assert (
        _error(await client.post("/v1/score", json=score_body(sample(), dedline_ms=5)), 422)["field"]
        == "options.dedline_ms"
    )
