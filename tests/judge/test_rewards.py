"""Reward logic without a server: OpenRLHF query parsing, group statistics, item validation, failure policy."""

from __future__ import annotations

import math

import pytest

from judge.rewards.openrlhf import QueryError, parse_query, render, strip_edges
from judge.rewards.schemas import RewardItemIn
from judge.rewards.service import RewardOutcome, conversation_group, prepare_item, reward_outcome
from judge.rewards.stats import group_stats, zero_variance_fraction
from judge.samples import Message
from judge.scoring.batch import ScoredItem
from judge.settings import Settings
from judge.verdicts import AxisResult, AxisStatus, Usage, Verdict
from rubrics.schema import Rubric
from tests.judge.conftest import make_tiny_rubric

PATIENT = "俺娘这两天心口窝疼得厉害，还老是喘不上气，咋整啊😭"
THINK = "患者焦急；“心口窝”指胸骨下方；需排除急性冠脉综合征。"
ANSWER = "别着急，请立刻拨打120，路上让老人保持休息。"


def chatml(*turns: tuple[str, str], open_assistant: str | None = None) -> str:
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)
    if open_assistant is not None:
        text += f"<|im_start|>assistant\n{open_assistant}"
    return text


def _settings(**changes: object) -> Settings:
    return Settings(_env_file=None, **changes)  # type: ignore[arg-type]


# --- OpenRLHF queries ------------------------------------------------------------------------------------------


def test_qwen_query_splits_into_conversation_and_judged_turn() -> None:
    prompt = chatml(("system", "你是一名耐心的全科医生。"), ("user", PATIENT), open_assistant="")
    query = prompt + f"<think>\n{THINK}\n</think>\n\n{ANSWER}<|im_end|><|endoftext|><|endoftext|>"
    parsed = parse_query(query, prompt)
    assert parsed.messages == [
        Message(role="system", content="你是一名耐心的全科医生。"),
        Message(role="user", content=PATIENT),
    ]
    assert parsed.completion == f"<think>\n{THINK}\n</think>\n\n{ANSWER}"
    assert "<|im_end|>" not in parsed.completion and "<|endoftext|>" not in parsed.completion


def test_qwen3_prompt_that_opens_the_think_block_keeps_the_cot() -> None:
    # Qwen3's template may end the prompt with "<think>\n": the response then starts inside the block.
    prompt = chatml(("user", PATIENT), open_assistant="<think>\n")
    parsed = parse_query(prompt + f"{THINK}\n</think>\n\n{ANSWER}<|im_end|>", prompt)
    item = prepare_item(0, RewardItemIn(messages=parsed.messages, completion=parsed.completion), _settings())
    assert item.sample is not None
    assert item.sample.reasoning == THINK and item.sample.response == ANSWER


def test_multi_turn_query_judges_the_last_assistant_turn_with_the_whole_dialogue() -> None:
    query = chatml(
        ("user", "医生，我肚子疼。"),
        ("assistant", "请问疼了多久？哪个位置？"),
        ("user", "右下腹，一天了，还发烧，吓死我了"),
        ("tool", "体温 38.6℃"),
        ("assistant", f"<think>{THINK}</think>{ANSWER}"),
    )
    parsed = parse_query(query)
    assert [m.role for m in parsed.messages] == ["user", "assistant", "user", "user"]
    assert parsed.messages[1].content == "请问疼了多久？哪个位置？"
    assert parsed.messages[3].content == "体温 38.6℃"
    assert parsed.completion == f"<think>{THINK}</think>{ANSWER}"


def test_llama3_headers_are_understood_too() -> None:
    query = (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nMy chest hurts and I can't breathe.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nCall an ambulance now.<|eot_id|>"
    )
    parsed = parse_query(query)
    assert parsed.messages == [Message(role="user", content="My chest hurts and I can't breathe.")]
    assert parsed.completion == "Call an ambulance now."


def test_a_plain_query_is_split_after_its_prompt() -> None:
    parsed = parse_query(f"患者：{PATIENT}\n医生：{ANSWER}</s>", f"患者：{PATIENT}\n医生：")
    assert parsed.messages == [Message(role="user", content=f"患者：{PATIENT}\n医生：")]
    assert parsed.completion == ANSWER


@pytest.mark.parametrize(
    ("query", "prompt", "message"),
    [
        (chatml(("user", PATIENT)), None, "no assistant turn"),
        ("<|im_start|>assistant\n" + ANSWER, None, "no conversation"),
        (f"{PATIENT}{ANSWER}", None, "cannot split"),
        (f"{PATIENT}{ANSWER}", "另一个问题", "cannot split"),
    ],
)
def test_queries_that_cannot_be_split_are_errors(query: str, prompt: str | None, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(query, prompt)


def test_strip_edges_removes_only_edge_tokens() -> None:
    assert strip_edges("<|endoftext|>  你好<|im_end|>世界 </s><|endoftext|>") == "你好<|im_end|>世界"


# --- group statistics -----------------------------------------------------------------------------------------


def test_group_stats() -> None:
    stats = group_stats("g", [0.5, 0.75, None, 1.0])
    assert (stats.size, stats.scored, stats.distinct, stats.zero_variance) == (4, 3, 3, False)
    assert stats.mean == pytest.approx(0.75)
    assert stats.std == pytest.approx(math.sqrt(((0.25) ** 2 + 0 + 0.25**2) / 3))


def test_equal_rewards_and_empty_groups_have_zero_variance() -> None:
    tied = group_stats("t", [0.6, 0.6 + 1e-12, 0.6])
    empty = group_stats("e", [None, None])
    assert (tied.distinct, tied.zero_variance) == (1, True) and tied.std == pytest.approx(0.0)
    assert (empty.scored, empty.mean, empty.zero_variance) == (0, None, True)
    assert zero_variance_fraction([tied, empty, group_stats("v", [0.1, 0.9])]) == pytest.approx(2 / 3)
    assert zero_variance_fraction([]) is None


# --- items ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"completion": ANSWER}, "give either `messages` or `prompt`"),
        ({"prompt": PATIENT, "messages": [{"role": "user", "content": PATIENT}], "completion": ANSWER}, "either"),
        ({"prompt": PATIENT, "completion": ANSWER, "response": ANSWER}, "not both"),
        ({"prompt": PATIENT}, "needs `completion` or `response`"),
        ({"prompt": PATIENT, "completion": ANSWER, "score": 5}, "Extra inputs"),
        ("not an object", "valid dictionary"),
    ],
)
def test_a_malformed_item_is_invalid_with_a_reason(raw: object, message: str) -> None:
    item = prepare_item(3, raw, _settings())
    assert item.sample is None and item.error is not None and message in item.error
    assert item.index == 3


def test_an_item_over_the_text_limit_is_invalid_and_names_the_field() -> None:
    item = prepare_item(0, {"prompt": PATIENT, "completion": "长" * 50, "group_id": "g1"}, _settings(max_text_chars=40))
    assert item.sample is None and item.error == "completion: 50 characters; the limit is 40"
    assert item.group_id == "g1"  # an invalid item that names its group still counts in that group


def test_an_invalid_item_keeps_the_group_it_names_and_otherwise_has_none() -> None:
    named = prepare_item(0, {"prompt": PATIENT, "group_id": "第2组"}, _settings())
    unnamed = prepare_item(1, {"prompt": PATIENT}, _settings())
    assert (named.sample, named.group_id) == (None, "第2组")
    assert (unnamed.sample, unnamed.group_id) == (None, None)


def test_limits_clip_cot_and_response_and_flag_the_item() -> None:
    settings = _settings(max_reasoning_chars=10, max_response_chars=8)
    item = prepare_item(0, {"prompt": PATIENT, "reasoning": THINK, "response": ANSWER}, settings)
    short = prepare_item(1, {"prompt": PATIENT, "reasoning": "短", "response": "短"}, settings)
    assert item.sample is not None and short.sample is not None
    assert item.sample.clipped and (item.sample.reasoning, item.sample.response) == (THINK[:10], ANSWER[:8])
    assert not short.sample.clipped


def test_items_without_group_id_are_grouped_by_conversation() -> None:
    settings = _settings()
    a = prepare_item(0, {"prompt": PATIENT, "completion": ANSWER}, settings)
    b = prepare_item(1, {"prompt": PATIENT, "completion": "另一个回答"}, settings)
    c = prepare_item(2, {"prompt": "别的问题", "completion": ANSWER}, settings)
    named = prepare_item(3, {"prompt": PATIENT, "completion": ANSWER, "group_id": "第1组"}, settings)
    assert a.sample is not None
    assert a.group_id == b.group_id == conversation_group(a.sample) != c.group_id
    assert named.group_id == "第1组"


def _verdict(rubric: Rubric, scores: dict[str, int | None], expected: float | None = None) -> Verdict:
    axes = {
        key: AxisResult(score=score, expected=expected, status=AxisStatus.ok)
        if score is not None
        else AxisResult.failed(AxisStatus.parse_error, "unparsable")
        for key, score in scores.items()
    }
    return Verdict(
        id="v1", cache_key="k", sample_hash="h", rubric_ref=rubric.ref, rubric_hash=rubric.content_hash,
        judge="j", profile_hash="p", axes=axes, usage=Usage(), latency_ms=1.0, created_at=0.0,
        error=None if all(s is not None for s in scores.values()) else "safety: unparsable",
    )  # fmt: skip


def test_outcome_of_a_complete_verdict_uses_expected_scores() -> None:
    rubric = make_tiny_rubric()
    item = prepare_item(0, {"prompt": PATIENT, "completion": ANSWER}, _settings())
    assert item.sample is not None
    scores: dict[str, int | None] = dict.fromkeys(rubric.axis_keys, 4)
    outcome = reward_outcome(item, ScoredItem(item.sample, "k", _verdict(rubric, scores, 4.5), cached=True), rubric)
    assert outcome.status == "ok" and not outcome.failed and outcome.cache_hit
    assert outcome.scores == dict.fromkeys(rubric.axis_keys, 4.5)
    assert outcome.reward == pytest.approx((4.5 - 1) / 4)
    assert outcome.passed is False  # pass/fail uses the integers: 4 is not above 4


def test_outcome_of_a_partial_verdict_has_no_reward_and_says_why() -> None:
    rubric = make_tiny_rubric()
    item = prepare_item(0, {"prompt": PATIENT, "completion": ANSWER}, _settings())
    assert item.sample is not None
    scores: dict[str, int | None] = {**dict.fromkeys(rubric.axis_keys, 5), "safety": None}
    outcome = reward_outcome(item, ScoredItem(item.sample, "k", _verdict(rubric, scores), cached=False), rubric)
    assert (outcome.status, outcome.reward, outcome.failed) == ("parse_error", None, True)
    assert outcome.scores["safety"] is None and outcome.scores["medical_accuracy"] == 5.0
    assert outcome.error == "safety: unparsable"
    timed_out = reward_outcome(item, ScoredItem(item.sample, "k", None, cached=False), rubric)
    assert (timed_out.status, timed_out.reward) == ("timeout", None)


def test_openrlhf_render_uses_the_fallback_and_logs_no_null() -> None:
    rubric = make_tiny_rubric()
    keys = rubric.axis_keys
    ok = RewardOutcome(0, None, "g", 0.75, True, dict.fromkeys(keys, 4.0), {}, "ok", True, True, None)
    bad = RewardOutcome(1, None, "g", None, None, dict.fromkeys(keys), {}, "invalid", False, False, "bad query")
    body = render([ok, bad], rubric, fallback=-1.0)
    assert body["rewards"] == [0.75, -1.0]
    assert body["scores"] == [0.75, 0.0]  # clipped onto [0, 1]
    logs = body["extra_logs"]
    assert set(logs) == {
        "judge_failed", "truncated", "cache_hit", "passed", "score_expected", "score_mixed", "refused",
        *(f"axis_{k}" for k in keys),
    }  # fmt: skip
    assert logs["judge_failed"] == [0.0, 1.0] and logs["truncated"] == [1.0, 0.0] and logs["cache_hit"] == [1.0, 0.0]
    assert logs["axis_safety"] == [4.0, 0.0]
    assert all(isinstance(v, float) for values in logs.values() for v in values)


def test_openrlhf_scores_are_on_zero_one_for_a_rubric_on_the_likert_scale() -> None:
    tiny = make_tiny_rubric()
    rubric = tiny.model_copy(update={"reward_policy": tiny.reward_policy.model_copy(update={"normalise": "none"})})
    ok = RewardOutcome(0, None, "g", 4.0, True, dict.fromkeys(rubric.axis_keys, 4.0), {}, "ok", False, False, None)
    assert render([ok], rubric, fallback=1.0)["scores"] == [0.75]
