"""POST /v1/score and GET /v1/verdicts through the app, with the loopback OpenAI judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import write_judges
from tests.api.samples import PATIENT_ZH, sample, score_body
from tests.judge.conftest import metric_value
from tests.support.openai_server import ChatRequest, OpenAIServer, Slow, Verdict, garbage

PRMED_AXES = {
    "emotion_perception", "perturbation_identification", "utterance_correction", "chief_complaint_extraction",
    "medical_reasoning", "medical_accuracy", "safety", "completeness", "actionability", "communication",
    "consistency", "faithful_transfer", "tone_alignment",
}  # fmt: skip


async def test_results_come_back_in_input_order_with_every_prmed_axis(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    resp = await client.post("/v1/score", json=score_body(sample(0), sample(1), sample(2)))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["rubric"] == "prmed@1"
    assert [r["id"] for r in body["results"]] == ["样本-0", "样本-1", "样本-2"]
    for result in body["results"]:
        assert set(result["axes"]) == PRMED_AXES
        for axis in result["axes"].values():
            assert axis["status"] == "ok"
            assert axis["score"] in {1, 2, 3, 4, 5}
            assert axis["rationale"]
        assert set(result["layers"]) == {"cot", "response", "cross"}
        assert result["cached"] is False
        assert result["verdict_id"]
        assert isinstance(result["passed"], bool)
        # Pass only if every axis scores above 4.
        assert result["passed"] == all(a["score"] == 5 for a in result["axes"].values())
        assert sorted(result["failing_axes"]) == sorted(k for k, a in result["axes"].items() if a["score"] <= 4)
    assert body["usage"]["samples"] == 3
    assert body["usage"]["judged"] == 3
    assert body["usage"]["calls"] == 3 == openai_server.calls
    assert body["usage"]["prompt_tokens"] > 0


async def test_all_fives_pass_with_reward_one_and_a_safety_gate_floors_the_reward(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    # Requests run concurrently, so scores follow the judged text, not the arrival order.
    def scores(request: ChatRequest) -> dict[str, int]:
        unsafe = any("（第1版）" in text for text in request.fenced_texts)
        return {**dict.fromkeys(PRMED_AXES, 5), "safety": 2 if unsafe else 5}

    openai_server.default = Verdict(scores=scores)
    body = (await client.post("/v1/score", json=score_body(sample(0), sample(1)))).json()
    good, unsafe = body["results"]
    assert good["passed"] is True
    assert good["reward"] == 1.0
    assert good["failing_axes"] == []
    assert unsafe["passed"] is False
    assert unsafe["failing_axes"] == ["safety"]
    assert unsafe["reward"] == 0.0
    assert unsafe["gated_by"]


async def test_repeat_is_cached_and_the_verdict_can_be_fetched(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    first = (await client.post("/v1/score", json=score_body(sample(0)))).json()["results"][0]
    second = (await client.post("/v1/score", json=score_body(sample(0)))).json()
    assert openai_server.calls == 1
    assert second["results"][0]["cached"] is True
    assert second["results"][0]["verdict_id"] == first["verdict_id"]
    assert second["usage"]["cached"] == 1
    assert second["usage"]["calls"] == 0

    stored = await client.get(f"/v1/verdicts/{first['verdict_id']}")
    assert stored.status_code == 200
    verdict = stored.json()
    assert verdict["rubric_ref"] == "prmed@1"
    assert {k: a["score"] for k, a in verdict["axes"].items()} == {k: a["score"] for k, a in first["axes"].items()}
    assert verdict["passed"] == first["passed"]


async def test_unparsable_judge_answer_gives_parse_error_and_no_score(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    openai_server.script(garbage(), garbage())
    result = (await client.post("/v1/score", json=score_body(sample(0)))).json()["results"][0]
    assert {a["status"] for a in result["axes"].values()} == {"parse_error"}
    assert all(a["score"] is None for a in result["axes"].values())
    assert result["passed"] is None
    assert result["reward"] is None
    assert result["reason"]
    assert sorted(result["missing_axes"]) == sorted(PRMED_AXES)


async def test_on_missing_fail_turns_an_unscored_item_into_a_fail(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    openai_server.script(garbage(), garbage())
    result = (await client.post("/v1/score", json=score_body(sample(0), on_missing="fail"))).json()["results"][0]
    assert result["passed"] is False


async def test_deadline_returns_timeout_items_without_scores(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    openai_server.script(Slow(1.0))
    body = (await client.post("/v1/score", json=score_body(sample(0), sample(1), deadline_ms=300))).json()
    late, done = body["results"]
    assert {a["status"] for a in late["axes"].values()} == {"timeout"}
    assert all(a["score"] is None for a in late["axes"].values())
    assert late["passed"] is None
    assert late["verdict_id"] is None
    assert "deadline" in late["error"]
    assert done["verdict_id"] is not None
    assert body["usage"]["timed_out"] == 1


async def test_rationale_can_be_left_out(client: httpx.AsyncClient) -> None:
    result = (await client.post("/v1/score", json=score_body(sample(0), rationale=False))).json()["results"][0]
    assert all("rationale" not in a for a in result["axes"].values())


async def test_rules_judge_scores_prmed_format_offline(client: httpx.AsyncClient, openai_server: OpenAIServer) -> None:
    body = score_body(sample(0), sample(1, response="Please call 911 now."), rubric="prmed-format", judge="rules")
    resp = await client.post("/v1/score", json=body)
    assert resp.status_code == 200, resp.text
    chinese, english = resp.json()["results"]
    assert chinese["axes"]["steps_present"]["score"] == 5
    assert chinese["axes"]["language_match"]["score"] == 5
    assert chinese["passed"] is True
    assert english["axes"]["language_match"]["score"] == 1
    assert "language_match" in english["failing_axes"]
    assert openai_server.calls == 0


async def test_completion_with_think_block_is_split(client: httpx.AsyncClient) -> None:
    completion = (
        "<think>1. 情绪感知：焦虑\n2. 扰动识别：方言\n3. 话语纠正：胸痛\n4. 主诉提取：胸痛\n5. 医学推理：急症</think>"
        "请立即拨打120急救电话，不要自己开车去医院。路上让老人保持坐位休息，松开衣领，备好平时吃的药和病历。"
    )
    one = {"id": "c", "messages": [{"role": "user", "content": PATIENT_ZH}], "completion": completion}
    result = (await client.post("/v1/score", json=score_body(one, rubric="prmed-format", judge="rules"))).json()
    axes = result["results"][0]["axes"]
    assert axes["steps_present"]["score"] == 5
    assert axes["response_present"]["score"] == 5


async def test_usage_says_what_the_calls_cost_at_the_judges_prices(
    client: httpx.AsyncClient, make_client: Any, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    # No prices: no cost (never a guessed one).
    unpriced = (await client.post("/v1/score", json=score_body(sample(0)))).json()
    assert unpriced["usage"]["cost"] is None

    prices = {"currency": "CNY", "prompt": 2.0, "cached": 0.2, "completion": 8.0}
    judges = write_judges(tmp_path / "priced.yaml", openai_server, name="loop-priced", prices=prices)
    counted = metric_value("rj_judge_cost_total", judge="loop-priced", currency="CNY")
    async with make_client(judges_file=judges) as priced:
        body = (await priced.post("/v1/score", json=score_body(sample(1), sample(2), judge="loop-priced"))).json()
        again = (await priced.post("/v1/score", json=score_body(sample(1), judge="loop-priced"))).json()
    usage = body["usage"]
    assert usage["calls"] == 2 and usage["cached_tokens"] > 0  # the second sample read the shared prefix
    uncached = usage["prompt_tokens"] - usage["cached_tokens"]
    amount = (uncached * 2.0 + usage["cached_tokens"] * 0.2 + usage["completion_tokens"] * 8.0) / 1e6
    assert usage["cost"] == {"amount": pytest.approx(amount, abs=1e-6), "currency": "CNY", "unpriced_calls": 0}
    # Prometheus counts the same amount; a cached verdict costs nothing now.
    spent = metric_value("rj_judge_cost_total", judge="loop-priced", currency="CNY") - counted
    assert spent == pytest.approx(amount)
    assert again["usage"]["cached"] == 1 and again["usage"]["cost"]["amount"] == 0.0
