"""verl's compute_score against a running server: one response per call, the same keys for every sample."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from judge.adapters import verl
from judge.adapters.client import RewardServerError
from tests.api.samples import PATIENT_ZH, REASONING_ZH, RESPONSE_ZH
from tests.api.test_score import PRMED_AXES
from tests.support.live_server import free_port
from tests.support.openai_server import ChatRequest, OpenAIServer, Verdict, garbage

KEYS = {
    "score", "judge_failed", "truncated", "passed", "cache_hit", "score_expected", "score_mixed", "refused", *PRMED_AXES
}


def solution(k: int) -> str:
    return f"<think>{REASONING_ZH}</think>{RESPONSE_ZH}（第{k}版）"


async def test_compute_score_as_verl_calls_it(reward_server: str, openai_server: OpenAIServer) -> None:
    assert inspect.iscoroutinefunction(verl.compute_score)
    # verl merges custom_reward_function.reward_kwargs into the call.
    result = await verl.compute_score(
        data_source="prmed",
        solution_str=solution(0),
        ground_truth="请立即拨打120。",
        extra_info={"question": PATIENT_ZH, "index": 0, "num_turns": None, "rollout_reward_scores": {}},
        base_url=reward_server,
        judge="loop",
    )
    assert set(result) == KEYS
    assert 0.0 <= result["score"] <= 1.0 and result["judge_failed"] == 0.0
    assert all(result[key] in {1.0, 2.0, 3.0, 4.0, 5.0} for key in PRMED_AXES)
    fenced = openai_server.last_request.fenced_texts
    assert fenced == [PATIENT_ZH, REASONING_ZH, f"{RESPONSE_ZH}（第0版）", "请立即拨打120。"]


async def test_concurrent_calls_share_the_client_and_failures_keep_the_keys(
    reward_server: str, openai_server: OpenAIServer
) -> None:
    def fail_two(request: ChatRequest) -> Any:
        return garbage() if any("（第2版）" in t for t in request.fenced_texts) else Verdict(scores=5)

    openai_server.default = fail_two
    # Samples without a conversation only with the opt-in (else MissingConversation, below).
    score = verl.make_compute_score(reward_server, fallback=-0.5, allow_missing_conversation=True)
    messages = [{"role": "user", "content": PATIENT_ZH}, {"role": "assistant", "content": "请问多久了？"}]
    extra: list[Any] = [{"messages": [*messages, {"role": "user", "content": "两天了，很怕"}]}] * 3 + [{}, None]
    results = await asyncio.gather(*(score("prmed", solution(k), None, info) for k, info in enumerate(extra)))
    assert all(set(r) == KEYS for r in results)
    assert [r["score"] for r in results] == [1.0, 1.0, -0.5, -0.5, -0.5]
    assert [r["judge_failed"] for r in results] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert results[0]["passed"] == 1.0 and results[2]["safety"] == 0.0  # no score: 0, never a made-up one
    # Items 3 and 4 have no conversation: the server marks them invalid without asking the judge.
    assert openai_server.calls == 4  # items 0 and 1, item 2 and its repair


async def test_a_sample_without_a_conversation_raises_naming_the_fix(reward_server: str) -> None:
    score = verl.make_compute_score(reward_server, judge="loop")
    with pytest.raises(verl.MissingConversation, match="extra_info") as raised:
        await score("prmed", "回答", "参考", {"index": 7, "num_turns": None})
    assert "allow_missing_conversation" in str(raised.value) and "['index', 'num_turns']" in str(raised.value)


def test_sync_and_batch_variants_have_verls_signatures(reward_server: str, openai_server: OpenAIServer) -> None:
    """Called from plain threads, as the legacy managers do; one pooled client on the adapter's own loop."""
    options = {"base_url": reward_server, "judge": "loop"}
    one = verl.compute_score_sync("prmed", solution(0), None, {"question": PATIENT_ZH}, **options)
    assert set(one) == KEYS and one["judge_failed"] == 0.0
    infos = [{"messages": [{"role": "user", "content": PATIENT_ZH}]}, {"question": "我孩子发烧三天了"}]
    many = verl.compute_score_batch(["prmed"] * 2, [solution(1), solution(2)], [None, "就医"], infos, **options)
    assert [set(r) for r in many] == [KEYS, KEYS] and all(r["judge_failed"] == 0.0 for r in many)
    assert verl.compute_score_scalar("prmed", solution(0), None, {"question": PATIENT_ZH}, **options) == one["score"]
    with pytest.raises(ValueError, match="same length"):
        verl.compute_score_batch(["prmed"], [solution(1)], [None, None], infos, **options)


def test_the_conversation_comes_from_extra_info() -> None:
    assert verl.conversation({"prompt": [{"role": "user", "content": "问"}]}) == [{"role": "user", "content": "问"}]
    assert verl.conversation({"prompt": "问"}) == [{"role": "user", "content": "问"}]
    assert verl.conversation({"question": "问"}) == [{"role": "user", "content": "问"}]
    tool = verl.conversation({"messages": [{"role": "tool", "content": "结果"}]})
    assert tool == [{"role": "user", "content": "结果"}]
    assert verl.conversation({"index": 3}) is None and verl.conversation(None) is None
    # A parquet round trip gives numpy arrays (here: any non-list iterable of messages).
    assert verl.conversation({"prompt": ({"role": "user", "content": "问"},)}) == [{"role": "user", "content": "问"}]


async def test_an_unreachable_server_raises_after_its_retries() -> None:
    score = verl.make_compute_score(f"http://127.0.0.1:{free_port()}", judge="loop", max_retries=1)
    with pytest.raises(RewardServerError, match="cannot reach"):
        await score("prmed", "回答", None, {"question": "问"})
