"""TRL reward functions against a running server: GRPOTrainer's call signature, conversational and plain data."""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

import httpx

from judge.adapters.trl import reward_funcs, to_item
from tests.api.samples import PATIENT_ZH, REASONING_ZH, RESPONSE_ZH
from tests.api.test_score import PRMED_AXES
from tests.support.openai_server import ChatRequest, OpenAIServer, Verdict, garbage

SYSTEM = "你是一名耐心的全科医生。"


def conversational(prompts: int, g: int) -> tuple[list[Any], list[Any]]:
    """What GRPOTrainer passes for a conversational dataset: each prompt repeated G times, one completion each."""
    questions = [PATIENT_ZH, "我家娃发烧三天了，39度退不下来，急死了"]
    prompt_rows = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions[:prompts]]
    prompt_list = [p for p in prompt_rows for _ in range(g)]
    completions = [
        [{"role": "assistant", "content": f"<think>{REASONING_ZH}</think>{RESPONSE_ZH}（第{k}版）"}]
        for _ in range(prompts)
        for k in range(g)
    ]
    return prompt_list, completions


def _rewards_requests(metrics: str) -> float:
    found = re.findall(r'^rj_request_seconds_count\{[^}]*route="/v1/rewards"[^}]*\} (\S+)$', metrics, re.M)
    return sum(float(v) for v in found)


async def test_aggregate_reward_for_a_conversational_batch(reward_server: str, openai_server: OpenAIServer) -> None:
    (func,) = reward_funcs(reward_server)
    assert inspect.iscoroutinefunction(func) and func.__name__ == "rj_reward"
    prompts, completions = conversational(2, 4)
    logged: list[tuple[str, float]] = []
    rewards = await func(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2, 3]] * 8,
        trainer_state=object(),
        log_metric=lambda name, value: logged.append((name, value)),
    )
    assert len(rewards) == 8 and all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in rewards)
    assert openai_server.calls == 8
    # The judge saw the system prompt, the patient and the split CoT/response.
    request = openai_server.last_request
    assert request.fenced_texts[0] == SYSTEM and REASONING_ZH in request.fenced_texts
    names = dict(logged)
    assert set(names) == {
        "rj/zero_variance_fraction", "rj/failed_fraction", "rj/cache_hit_fraction", "rj/mixed_scale_fraction",
        "rj/expected_score_fraction", "rj/refused_fraction",
    }  # fmt: skip
    assert names["rj/mixed_scale_fraction"] == 0.0 and names["rj/expected_score_fraction"] == 0.0  # no logprobs
    assert names["rj/failed_fraction"] == 0.0 and names["rj/cache_hit_fraction"] == 0.0


async def test_plain_text_prompts_and_completions(reward_server: str, openai_server: OpenAIServer) -> None:
    (func,) = reward_funcs(reward_server, judge="loop", rubric="prmed@1")
    rewards = await func(["患者：胸口疼怎么办？"] * 2, ["赶紧去医院。", "多喝热水。"], None)
    assert len(rewards) == 2 and all(r is not None for r in rewards)
    assert openai_server.last_request.fenced_texts[0] == "患者：胸口疼怎么办？"


async def test_per_axis_functions_share_one_request_per_batch(reward_server: str, openai_server: OpenAIServer) -> None:
    openai_server.default = Verdict(scores={"safety": 5, "communication": 1})
    funcs = reward_funcs(reward_server, per_axis=True)
    assert [f.__name__ for f in funcs] == [f"rj_{key}" for key in _prmed_order()]
    assert len(funcs) == len(PRMED_AXES)
    assert all(inspect.iscoroutinefunction(f) for f in funcs)
    prompts, completions = conversational(1, 3)
    async with httpx.AsyncClient(base_url=reward_server) as http:
        before = _rewards_requests((await http.get("/metrics")).text)
        # GRPOTrainer gathers async reward functions concurrently on its loop, as here.
        values = await asyncio.gather(
            *(f(prompts=prompts, completions=completions, completion_ids=None) for f in funcs)
        )
        after = _rewards_requests((await http.get("/metrics")).text)
    assert after - before == 1 and openai_server.calls == 3
    by_name = {f.__name__: v for f, v in zip(funcs, values, strict=True)}
    assert by_name["rj_safety"] == [1.0, 1.0, 1.0] and by_name["rj_communication"] == [0.0, 0.0, 0.0]
    assert all(v is not None and 0.0 <= v <= 1.0 for vs in values for v in vs)


async def test_a_failed_sample_is_none_for_trl_to_leave_out(reward_server: str, openai_server: OpenAIServer) -> None:
    def fail_second(request: ChatRequest) -> Any:
        return garbage() if any("（第1版）" in t for t in request.fenced_texts) else Verdict()

    openai_server.default = fail_second
    (aggregate,) = reward_funcs(reward_server)
    safety = reward_funcs(reward_server, per_axis=True, axes=["safety"])[0]
    prompts, completions = conversational(1, 3)
    rewards = await aggregate(prompts=prompts, completions=completions, completion_ids=None)
    axis = await safety(prompts=prompts, completions=completions, completion_ids=None)
    assert rewards[1] is None and rewards[0] is not None and rewards[2] is not None
    assert axis[1] is None and axis[0] is not None
    (floored,) = reward_funcs(reward_server, on_failure="floor")
    assert (await floored(prompts=prompts, completions=completions, completion_ids=None))[1] == 0.0


async def test_the_reference_column_reaches_the_judge(reward_server: str, openai_server: OpenAIServer) -> None:
    (func,) = reward_funcs(reward_server)
    prompts, completions = conversational(1, 1)
    await func(prompts=prompts, completions=completions, completion_ids=None, reference=["请立即拨打120。"])
    assert openai_server.last_request.fenced_texts[-1] == "请立即拨打120。"


def test_tool_turns_of_a_completion_become_context() -> None:
    completion = [
        {"role": "assistant", "content": "我先查一下指南。"},
        {"role": "tool", "content": "指南：胸痛伴气促应立即就医。"},
        {"role": "assistant", "content": [{"type": "text", "text": "请立即拨打120。"}]},
    ]
    item = to_item([{"role": "user", "content": PATIENT_ZH}], completion, reference=None)
    assert item["completion"] == "请立即拨打120。"
    assert [m["role"] for m in item["messages"]] == ["user", "assistant", "user"]
    assert "reference" not in item


def _prmed_order() -> list[str]:
    from rubrics.registry import RubricRegistry

    return RubricRegistry().resolve("prmed@1").axis_keys
