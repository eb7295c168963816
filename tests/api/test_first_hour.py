"""What the API tells a new user: a judge that cannot score the rubric is a 422, a missing judge follows the
rubric's kind, the judges are listed without secrets, a missing optional extra is a 501 naming it."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest

from tests.api.samples import sample, score_body
from tests.support.openai_server import OpenAIServer


async def test_the_rules_judge_on_an_llm_rubric_is_a_422(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/score", json=score_body(sample(0), rubric="prmed", judge="rules"))
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["type"] == "JudgeRubricMismatch" and error["field"] == "judge"
    assert "cannot score rubric 'prmed@2' of kind 'llm'" in error["message"]
    rewards = await client.post("/v1/rewards", json={"rubric": "prmed", "judge": "rules", "items": [sample(0)]})
    assert rewards.status_code == 422 and rewards.json()["error"]["field"] == "judge"


async def test_a_request_without_a_judge_gets_the_one_that_fits(
    client: httpx.AsyncClient, make_client: Any, openai_server: OpenAIServer
) -> None:
    rules = {"rubric": "prmed-format", "samples": [sample(0)]}
    resp = await client.post("/v1/score", json=rules)
    assert resp.status_code == 200 and resp.json()["judge"] == "rules"
    # prmed is an LLM rubric; the test judges file has one usable LLM judge and one without its key: both fit.
    ambiguous = await client.post("/v1/score", json={"rubric": "prmed", "samples": [sample(0)]})
    assert ambiguous.status_code == 422 and "RJ_DEFAULT_JUDGE" in ambiguous.json()["error"]["message"]
    async with make_client(default_judge="loop") as configured:
        chosen = await configured.post("/v1/score", json={"rubric": "prmed", "samples": [sample(0)]})
        assert chosen.status_code == 200 and chosen.json()["judge"] == "loop"
    # prmed@2 judges the response-layer axes in a call of their own, without the CoT: two calls, one sample.
    assert openai_server.calls == 2


async def test_judges_are_listed_without_secrets(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RJ_TEST_SURELY_UNSET_KEY", "sk-秘密-do-not-show")
    resp = await client.get("/v1/judges")
    assert resp.status_code == 200
    names = [j["name"] for j in resp.json()["data"]]
    assert names == ["rules", "loop", "needs-key"]
    keyed = resp.json()["data"][2]
    assert keyed["api_key_env"] == "RJ_TEST_SURELY_UNSET_KEY" and keyed["api_key_set"] is True
    assert "sk-秘密" not in resp.text


async def test_a_missing_extra_is_a_501_naming_it(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "judge.agreement.service", raising=False)
    monkeypatch.setitem(sys.modules, "scipy", None)
    resp = await client.get("/v1/agreement", params={"rubric": "prmed", "raters": "judge:*"})
    assert resp.status_code == 501
    error = resp.json()["error"]
    assert error["type"] == "MissingExtra" and "pip install 'rubric-judge[stats]'" in error["message"]


async def test_answers_carry_a_request_id(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"x-request-id": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    fresh = await client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
