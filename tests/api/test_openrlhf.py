"""POST /get_reward as OpenRLHF calls it: one chat-templated query per POST, answers in its own shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.api.conftest import AppClient
from tests.api.samples import PATIENT_ZH, REASONING_ZH, RESPONSE_ZH
from tests.api.test_score import PRMED_AXES
from tests.support.openai_server import ChatRequest, OpenAIServer, Verdict, garbage

SYSTEM = "你是一名耐心、专业的全科医生。"
LOG_KEYS = {
    "judge_failed", "truncated", "cache_hit", "passed", "score_expected", "score_mixed", "refused",
    *(f"axis_{key}" for key in PRMED_AXES),
}  # fmt: skip


def qwen_prompt(*turns: tuple[str, str]) -> str:
    """A Qwen chat template rendered with add_generation_prompt (the prompt OpenRLHF keeps)."""
    return "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns) + "<|im_start|>assistant\n"


PROMPT = qwen_prompt(("system", SYSTEM), ("user", PATIENT_ZH))


def query(prompt: str = PROMPT, version: int = 0) -> str:
    """prompt + response as OpenRLHF decodes them (skip_special_tokens=False): EOS and padding kept."""
    return f"{prompt}<think>\n{REASONING_ZH}\n</think>\n\n{RESPONSE_ZH}（第{version}版）<|im_end|><|endoftext|>"


def openrlhf_body(*queries: str, prompts: list[Any] | None = None, labels: list[Any] | None = None) -> dict[str, Any]:
    """What OpenRLHF's SingleTurnAgentExecutor posts (``_fetch_rewards_via_http``)."""
    return {
        "query": list(queries),
        "prompts": prompts if prompts is not None else [PROMPT] * len(queries),
        "labels": labels if labels is not None else [None] * len(queries),
    }


async def test_one_query_per_post_as_openrlhf_sends_it(client: httpx.AsyncClient, openai_server: OpenAIServer) -> None:
    resp = await client.post("/get_reward?judge=loop", json=openrlhf_body(query()))
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert len(out["rewards"]) == len(out["scores"]) == 1
    assert 0.0 <= out["scores"][0] <= 1.0 and out["scores"][0] == pytest.approx(out["rewards"][0])
    logs = out["extra_logs"]
    assert set(logs) == LOG_KEYS and all(len(values) == 1 for values in logs.values())
    assert logs["judge_failed"] == [0.0] and logs["cache_hit"] == [0.0] and logs["truncated"] == [0.0]
    assert all(logs[f"axis_{key}"][0] in {1.0, 2.0, 3.0, 4.0, 5.0} for key in PRMED_AXES)
    # The judge saw the conversation and the judged turn, split at the template's markers, tokens removed.
    request = openai_server.last_request
    assert request.fenced_texts == [SYSTEM, PATIENT_ZH, REASONING_ZH, f"{RESPONSE_ZH}（第0版）"]
    assert "<|im_end|>" not in request.prompt and "<|endoftext|>" not in request.prompt

    again = (await client.post("/get_reward?judge=loop", json=openrlhf_body(query()))).json()
    assert again["extra_logs"]["cache_hit"] == [1.0] and again["rewards"] == out["rewards"]
    assert openai_server.calls == 1


async def test_lists_come_back_in_input_order(client: httpx.AsyncClient, openai_server: OpenAIServer) -> None:
    def by_version(request: ChatRequest) -> dict[str, int]:
        version = next(k for k in range(3) if any(f"（第{k}版）" in t for t in request.fenced_texts))
        return dict.fromkeys(request.axis_keys, version + 3)

    openai_server.default = Verdict(scores=by_version)
    out = (
        await client.post("/get_reward?judge=loop", json=openrlhf_body(*(query(version=k) for k in range(3))))
    ).json()
    assert out["extra_logs"]["axis_safety"] == [3.0, 4.0, 5.0]
    assert out["rewards"] == sorted(out["rewards"]) and out["rewards"][-1] == 1.0
    assert out["extra_logs"]["passed"] == [0.0, 0.0, 1.0]


async def test_empty_lists_in_empty_lists_out_even_without_a_judge(client: httpx.AsyncClient) -> None:
    resp = await client.post("/get_reward", json={"query": [], "prompts": [], "labels": []})
    assert resp.status_code == 200
    assert resp.json() == {"rewards": [], "scores": [], "extra_logs": {key: [] for key in LOG_KEYS}}


async def test_one_bad_item_gets_the_fallback_and_is_flagged(
    make_client: AppClient, openai_server: OpenAIServer
) -> None:
    openai_server.default = lambda request: (
        garbage() if any("（第2版）" in t for t in request.fenced_texts) else Verdict(scores=5)
    )
    no_answer = qwen_prompt(("user", PATIENT_ZH))[: -len("<|im_start|>assistant\n")]  # no assistant turn at all
    body = openrlhf_body(query(version=0), no_answer, query(version=2), prompts=[PROMPT, None, PROMPT])
    async with make_client(reward_judge="loop", reward_fallback=-1.0) as app:
        resp = await app.post("/get_reward", json=body)
    assert resp.status_code == 200
    out = resp.json()
    assert out["rewards"] == [1.0, -1.0, -1.0]
    assert out["scores"] == [1.0, 0.0, 0.0]
    logs = out["extra_logs"]
    assert logs["judge_failed"] == [0.0, 1.0, 1.0]
    assert logs["axis_safety"] == [5.0, 0.0, 0.0]  # no score: 0, outside 1..5, never null
    assert openai_server.calls == 3  # the good one, and the failing one with its repair; the bad query is not sent


async def test_labels_are_the_reference_and_query_parameters_pick_rubric_and_judge(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    reference = "胸痛伴呼吸困难需立即拨打120。"
    resp = await client.post("/get_reward?rubric=prmed@1&judge=loop", json=openrlhf_body(query(), labels=[reference]))
    assert resp.status_code == 200
    assert openai_server.last_request.fenced_texts[-1] == reference


async def test_multi_turn_query_is_judged_on_its_last_assistant_turn(
    client: httpx.AsyncClient, openai_server: OpenAIServer
) -> None:
    earlier = "请问您母亲多大年纪？有没有心脏病史？"
    dialogue = qwen_prompt(("user", PATIENT_ZH), ("assistant", earlier), ("user", "七十多了，有高血压，现在出冷汗"))
    out = (await client.post("/get_reward?judge=loop", json=openrlhf_body(query(dialogue), prompts=[dialogue]))).json()
    assert out["extra_logs"]["judge_failed"] == [0.0]
    fenced = openai_server.last_request.fenced_texts
    assert fenced[:3] == [PATIENT_ZH, earlier, "七十多了，有高血压，现在出冷汗"]
    assert fenced[3:] == [REASONING_ZH, f"{RESPONSE_ZH}（第0版）"]


async def test_older_clients_that_send_only_query_are_served(client: httpx.AsyncClient) -> None:
    out = (await client.post("/get_reward?judge=loop", json={"query": [query()]})).json()
    assert out["extra_logs"]["judge_failed"] == [0.0] and len(out["rewards"]) == 1


async def test_errors_answer_in_fastapis_shape(client: httpx.AsyncClient) -> None:
    no_judge = await client.post("/get_reward", json=openrlhf_body(query()))
    assert no_judge.status_code == 422 and "RJ_REWARD_JUDGE" in no_judge.json()["detail"]
    unknown = await client.post("/get_reward?judge=nobody", json=openrlhf_body(query()))
    assert unknown.status_code == 404 and "nobody" in unknown.json()["detail"]
    unknown_rubric = await client.post("/get_reward?judge=loop&rubric=nothing", json=openrlhf_body(query()))
    assert unknown_rubric.status_code == 404
    missing = await client.post("/get_reward?judge=loop", json={"prompts": [PROMPT]})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "query"] and missing.json()["detail"][0]["type"] == "missing"
    not_json = await client.post(
        "/get_reward?judge=loop", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["type"] == "json_invalid"


async def test_api_keys_guard_get_reward_by_header_or_query(make_client: AppClient) -> None:
    body: dict[str, list[str]] = {"query": [], "prompts": [], "labels": []}
    async with make_client(api_keys=SecretStr("s3cret,other")) as app:
        assert (await app.post("/get_reward", json=body)).status_code == 401
        assert (await app.post("/get_reward?api_key=wrong", json=body)).json() == {
            "detail": "missing or invalid API key"
        }
        assert (await app.post("/get_reward?api_key=s3cret", json=body)).status_code == 200
        headers = {"authorization": "Bearer other"}
        assert (await app.post("/get_reward", json=body, headers=headers)).status_code == 200
