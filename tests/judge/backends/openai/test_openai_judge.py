"""The OpenAI judge through the real ``openai`` client against the loopback server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import openai
import pytest

from judge.backends.base import JudgeBackend
from judge.backends.factory import build_backend
from judge.backends.openai.fences import FENCE_PATTERN
from judge.backends.openai.judge import OpenAIJudge
from judge.backends.openai.parse_results import NO_OBJECT
from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.verdicts import AxisStatus
from rubrics.schema import Rubric
from tests.judge.backends.openai.test_prompts import INJECTION
from tests.judge.conftest import KEYS, MakeJudge, axis_scores, make_sample, metric_value
from tests.support.openai_server import (
    OpenAIServer,
    Text,
    Verdict,
    bad_request,
    default_scores,
    garbage,
)

Style = Literal["fenced", "prose", "several"]


async def test_valid_json_verdict(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    judge = make_judge(temperature=0.0, max_tokens=512)
    outcome = await judge.score(zh_sample, tiny_rubric)

    expected = default_scores(openai_server.last_request)
    assert outcome.complete
    assert outcome.error is None
    assert list(outcome.axes) == KEYS
    assert axis_scores(outcome) == expected
    for axis in outcome.axes.values():
        assert axis.status is AxisStatus.ok
        assert axis.score_method == "integer"
        assert axis.expected is None
        assert axis.rationale == "依据量表逐项核对后给出的评分理由。"
    assert outcome.usage.calls == 1
    assert outcome.usage.retries == 0
    assert outcome.usage.prompt_tokens > 0
    assert outcome.usage.completion_tokens > 0

    body = openai_server.last_request.body
    assert body["model"] == "loopback-judge"
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 512
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"]["properties"]["axes"]["required"] == KEYS
    assert "logprobs" not in body
    assert "top_logprobs" not in body
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert zh_sample.response in body["messages"][1]["content"]
    assert metric_value("rj_axis_results_total", judge=judge.profile.name, status="ok") == 3
    assert metric_value("rj_judge_call_seconds_count", judge=judge.profile.name, outcome="ok") == 1


async def test_same_sample_scores_the_same_whatever_the_nonce(
    make_judge: MakeJudge, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    judge = make_judge()
    first = await judge.score(zh_sample, tiny_rubric)
    second = await judge.score(zh_sample, tiny_rubric)
    other = await judge.score(make_sample(response="多喝热水就好了。"), tiny_rubric)

    assert axis_scores(first) == axis_scores(second)
    assert other.complete


@pytest.mark.parametrize("style", ["fenced", "prose", "several"])
async def test_verdict_wrapped_in_text(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample, style: Style
) -> None:
    openai_server.script(Verdict(scores={"emotion_perception": 4, "medical_accuracy": 5, "safety": 3}, style=style))
    outcome = await make_judge().score(zh_sample, tiny_rubric)

    assert axis_scores(outcome) == {"emotion_perception": 4, "medical_accuracy": 5, "safety": 3}
    assert openai_server.calls == 1


async def test_garbage_then_garbage_gives_parse_error_after_one_repair(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(garbage(), garbage("还是无法评分。"))
    judge = make_judge()
    outcome = await judge.score(zh_sample, tiny_rubric)

    assert openai_server.calls == 2
    assert not outcome.complete
    for axis in outcome.axes.values():
        assert axis.status is AxisStatus.parse_error
        assert axis.score is None
        assert axis.error == NO_OBJECT
    assert outcome.error == NO_OBJECT
    assert outcome.usage.calls == 2

    repair = openai_server.last_request.body["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == garbage().content
    assert NO_OBJECT in repair[3]["content"]
    assert "emotion_perception, medical_accuracy, safety" in repair[3]["content"]
    name = judge.profile.name
    assert metric_value("rj_judge_parse_failures_total", judge=name) == 2
    assert metric_value("rj_judge_repairs_total", judge=name, outcome="failed") == 1
    assert metric_value("rj_axis_results_total", judge=name, status="parse_error") == 3


async def test_repair_succeeds(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(garbage(), Verdict(scores=4, style="fenced"))
    judge = make_judge()
    outcome = await judge.score(zh_sample, tiny_rubric)

    assert outcome.complete
    assert outcome.error is None
    assert axis_scores(outcome) == dict.fromkeys(KEYS, 4)
    assert outcome.usage.calls == 2
    assert metric_value("rj_judge_repairs_total", judge=judge.profile.name, outcome="ok") == 1


async def test_a_complete_repair_replaces_the_partial_first_answer(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    # Issue 9: a partial first object (perhaps a half-copied quote) must not survive beside a complete repair.
    partial = Text(
        '{"axes": {"emotion_perception": {"rationale": "好", "score": 5}, "safety": {"rationale": "好", "score": 7}}}'
    )
    openai_server.script(partial, Verdict(scores=3))
    outcome = await make_judge().score(zh_sample, tiny_rubric)

    assert axis_scores(outcome) == {"emotion_perception": 3, "medical_accuracy": 3, "safety": 3}
    assert outcome.error is None
    repair_note = openai_server.last_request.body["messages"][-1]["content"]
    assert "axis 'medical_accuracy' missing" in repair_note
    assert "score 7 is not an integer" in repair_note


async def test_no_repair_when_disabled(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(garbage())
    outcome = await make_judge(repair=False).score(zh_sample, tiny_rubric)

    assert openai_server.calls == 1
    assert all(axis.status is AxisStatus.parse_error for axis in outcome.axes.values())


async def test_logprobs_expected_score(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    distributions = {
        "emotion_perception": {"4": 0.6, " 5": 0.25, "3": 0.1, "，": 0.05},
        "medical_accuracy": {"2": 0.5, "3": 0.5},
    }
    openai_server.script(
        Verdict(
            scores={"emotion_perception": 4, "medical_accuracy": 2, "safety": 5}, p_top=0.8, distributions=distributions
        )
    )
    outcome = await make_judge(logprobs=True, top_logprobs=5).score(zh_sample, tiny_rubric)

    body = openai_server.last_request.body
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 5

    # What the server sent: p = exp(log p) for the digit tokens among the top logprobs.
    def expected(probabilities: dict[str, float]) -> tuple[float, float]:
        digits = {int(t.strip()): math.exp(math.log(p)) for t, p in probabilities.items() if t.strip() in "12345"}
        mass = sum(digits.values())
        return sum(k * p for k, p in digits.items()) / mass, mass

    emotion = outcome.axes["emotion_perception"]
    assert emotion.score == 4
    assert emotion.score_method == "logprobs"
    e, mass = expected(distributions["emotion_perception"])
    assert emotion.expected == pytest.approx(e, rel=1e-12)
    assert emotion.mass == pytest.approx(mass, rel=1e-12)
    assert emotion.expected == pytest.approx((4 * 0.6 + 5 * 0.25 + 3 * 0.1) / 0.95)

    accuracy = outcome.axes["medical_accuracy"]
    assert accuracy.expected == pytest.approx(2.5)
    assert accuracy.mass == pytest.approx(1.0)

    safety = outcome.axes["safety"]  # default spread: 0.8 on 5, 0.05 on each other digit
    assert safety.expected == pytest.approx(0.8 * 5 + 0.05 * (1 + 2 + 3 + 4))
    assert safety.score == 5


async def test_logprobs_asked_but_not_returned(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(Verdict(scores=3, logprobs=False))
    outcome = await make_judge(logprobs=True).score(zh_sample, tiny_rubric)

    for axis in outcome.axes.values():
        assert axis.status is AxisStatus.ok
        assert axis.score == 3
        assert axis.score_method == "no_logprobs"
        assert axis.expected is None
        assert axis.mass is None


async def test_logprobs_that_do_not_match_the_answer(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    # Logprobs sent, but for a garbage answer; the repaired answer carries none.
    openai_server.script(garbage(), Verdict(scores=4, logprobs=False))
    outcome = await make_judge(logprobs=True).score(zh_sample, tiny_rubric)

    assert all(axis.score_method == "no_logprobs" and axis.score == 4 for axis in outcome.axes.values())


async def test_isolated_mode_one_call_per_axis(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.default = lambda request: Verdict(scores={key: len(key) % 5 + 1 for key in request.axis_keys})
    outcome = await make_judge(mode="isolated").score(zh_sample, tiny_rubric)

    assert openai_server.calls == 3
    asked = sorted(tuple(r.request.axis_keys) for r in openai_server.requests)
    assert asked == [(key,) for key in sorted(KEYS)]
    assert axis_scores(outcome) == {key: len(key) % 5 + 1 for key in KEYS}
    assert list(outcome.axes) == KEYS
    assert outcome.usage.calls == 3
    assert outcome.usage.prompt_tokens == sum(max(1, len(r.request.prompt) // 2) for r in openai_server.requests)


async def test_isolated_mode_failures_stay_per_axis(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    def behave(request: Any) -> Any:
        return bad_request("安全性维度请求失败") if request.axis_keys == ["safety"] else Verdict(scores=4)

    openai_server.default = behave
    outcome = await make_judge(mode="isolated").score(zh_sample, tiny_rubric)

    assert outcome.axes["safety"].status is AxisStatus.judge_error
    assert outcome.axes["emotion_perception"].score == 4
    assert outcome.axes["medical_accuracy"].score == 4
    assert outcome.error is not None
    assert "安全性维度请求失败" in outcome.error


@pytest.mark.parametrize("structured_output", ["json_object", "none"])
async def test_json_object_and_plain_text_modes(
    make_judge: MakeJudge,
    openai_server: OpenAIServer,
    tiny_rubric: Rubric,
    zh_sample: Sample,
    structured_output: str,
) -> None:
    outcome = await make_judge(structured_output=structured_output).score(zh_sample, tiny_rubric)

    body = openai_server.last_request.body
    if structured_output == "json_object":
        assert body["response_format"] == {"type": "json_object"}
    else:
        assert "response_format" not in body
    # The server found the axes from the prompt's RUBRIC_AXES line.
    assert openai_server.last_request.axis_keys == KEYS
    assert outcome.complete
    assert axis_scores(outcome) == default_scores(openai_server.last_request)


async def test_injected_verdicts_do_not_become_the_score(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    sample = make_sample(reasoning=f"患者胸闷气短。{INJECTION}", response=f"请尽快就医。{INJECTION}")
    openai_server.script(Verdict(scores=2))
    outcome = await make_judge(structured_output="none").score(sample, tiny_rubric)

    assert axis_scores(outcome) == dict.fromkeys(KEYS, 2)
    request = openai_server.last_request
    fences = {m.group(1): m.group(3) for m in FENCE_PATTERN.finditer(request.body["messages"][1]["content"])}
    assert "[RESULT] 5" in fences["REASONING"]
    assert '"score": 5' in fences["RESPONSE"]
    assert "ignore previous instructions" in fences["REASONING"]
    assert request.axis_keys == KEYS  # the fake RUBRIC_AXES line inside the fence was not taken


async def test_judge_quoting_the_injection_before_its_answer(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    sample = make_sample(reasoning=f"患者胸闷气短。{INJECTION}")
    fake = json.dumps({"axes": {key: {"rationale": "完美", "score": 5} for key in KEYS}}, ensure_ascii=False)
    real = json.dumps(
        {"axes": {key: {"rationale": "试图操纵评分" if i == 0 else "一般", "score": 2} for i, key in enumerate(KEYS)}},
        ensure_ascii=False,
    )
    openai_server.script(Text(f"思维链中包含伪造的评分 {fake}，这不是我的答案。\n[RESULT] 5\n最终评分：\n{real}"))
    outcome = await make_judge(structured_output="none").score(sample, tiny_rubric)

    assert axis_scores(outcome) == dict.fromkeys(KEYS, 2)
    assert outcome.axes["emotion_perception"].rationale == "试图操纵评分"


async def test_multi_turn_conversation_is_sent_whole(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    sample = make_sample(turns=3)
    outcome = await make_judge().score(sample, tiny_rubric)

    fenced = openai_server.last_request.fenced_texts
    assert fenced[: len(sample.messages)] == [m.content for m in sample.messages]
    assert fenced[-2:] == [sample.reasoning, sample.response]
    assert outcome.complete


async def test_concurrency_is_capped_per_backend(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    import asyncio

    openai_server.default = Verdict(delay_s=0.05)
    judge = make_judge(concurrency=2, mode="isolated")
    samples = [make_sample(response=f"第{i}个回答：建议尽快就医。") for i in range(4)]
    outcomes = await asyncio.gather(*(judge.score(s, tiny_rubric) for s in samples))

    assert all(o.complete for o in outcomes)
    assert openai_server.calls == 12
    assert openai_server.max_in_flight <= 2


async def test_builtin_prmed_rubric(make_judge: MakeJudge, openai_server: OpenAIServer, zh_sample: Sample) -> None:
    path = Path(__file__).resolve().parents[4] / "rubrics" / "builtin" / "prmed-1.yaml"
    if not path.exists():
        pytest.skip("prmed-1.yaml not present")
    from rubrics.loader import load_rubric_file

    rubric = load_rubric_file(path)
    outcome = await make_judge(logprobs=True).score(zh_sample, rubric)

    assert outcome.complete
    assert list(outcome.axes) == rubric.axis_keys
    assert len(outcome.axes) == 13
    assert all(axis.score_method == "logprobs" for axis in outcome.axes.values())


def test_missing_api_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RJ_TEST_JUDGE_KEY", raising=False)
    profile = JudgeProfile(name="keyed", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="RJ_TEST_JUDGE_KEY")

    with pytest.raises(JudgeUnavailable, match="RJ_TEST_JUDGE_KEY"):
        OpenAIJudge(profile)


async def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RJ_TEST_JUDGE_KEY", "sk-测试")
    judge = OpenAIJudge(JudgeProfile(name="keyed", model="m", api_key_env="RJ_TEST_JUDGE_KEY"))
    monkeypatch.setenv("RJ_TEST_JUDGE_KEY", "")
    empty = OpenAIJudge(JudgeProfile(name="keyed", model="m", api_key_env="RJ_TEST_JUDGE_KEY"))
    unkeyed = OpenAIJudge(JudgeProfile(name="local", model="m", base_url="http://127.0.0.1:9/v1"))
    try:
        assert judge._client.api_key == "sk-测试"
        assert empty._client.api_key == "EMPTY"
        assert unkeyed._client.api_key == "EMPTY"
        assert unkeyed._client.max_retries == 0
    finally:
        for j in (judge, empty, unkeyed):
            await j.aclose()


def test_profile_without_model_is_unavailable() -> None:
    with pytest.raises(JudgeUnavailable, match="names no model"):
        OpenAIJudge(JudgeProfile(name="nomodel"))


async def test_given_client_is_not_closed(openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample) -> None:
    client = openai.AsyncOpenAI(base_url=openai_server.url, api_key="EMPTY", max_retries=0)
    judge = OpenAIJudge(JudgeProfile(name="shared", model="m"), client=client)
    await judge.aclose()

    assert not client.is_closed()
    assert (await judge.score(zh_sample, tiny_rubric)).complete
    await client.close()


async def test_factory(openai_server: OpenAIServer) -> None:
    backend = build_backend(JudgeProfile(name="f", model="m", base_url=openai_server.url))
    assert isinstance(backend, OpenAIJudge)
    assert isinstance(backend, JudgeBackend)
    await backend.aclose()

    with pytest.raises(JudgeUnavailable, match="reward model backend not installed"):
        build_backend(JudgeProfile(name="rm", backend="reward_model"))
    from judge.backends.reward_model_judge import RewardModelJudge

    engine: Any = object()  # constructing the backend does not touch the engine
    rm = build_backend(JudgeProfile(name="rm", backend="reward_model"), engine=engine)
    assert isinstance(rm, RewardModelJudge)

    try:
        rules = build_backend(JudgeProfile(name="rules", backend="rules"))
    except ImportError:
        pytest.skip("rules backend not present")
    assert rules.profile.backend == "rules"


async def test_repair_that_fixes_some_axes_reports_only_the_rest(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    first = Text('{"axes": {"emotion_perception": {"rationale": "好", "score": 5}}}')
    second = Text(
        '{"axes": {"medical_accuracy": {"rationale": "好", "score": 4}, "safety": {"rationale": "差", "score": 0}}}'
    )
    openai_server.script(first, second)
    outcome = await make_judge().score(zh_sample, tiny_rubric)

    assert axis_scores(outcome) == {"emotion_perception": 5, "medical_accuracy": 4, "safety": None}
    assert outcome.axes["safety"].status is AxisStatus.parse_error
    assert outcome.error == "axis 'safety': score 0 is not an integer from 1 to 5"


async def test_requests_go_out_as_json_with_the_profiles_fields(
    openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    judge = OpenAIJudge(
        JudgeProfile(name="wire", model="评审模型", base_url=openai_server.url, temperature=0.3, max_tokens=900)
    )
    try:
        await judge.score(zh_sample, tiny_rubric)
    finally:
        await judge.aclose()
    request = openai_server.last_request
    assert request.headers["content-type"] == "application/json"
    assert (request.body["model"], request.body["temperature"], request.body["max_tokens"]) == ("评审模型", 0.3, 900)
    assert request.body["response_format"]["type"] == "json_schema"
    assert any("俺这两天心口窝" in text for text in request.fenced_texts)
