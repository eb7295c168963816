"""Rendering, the truncation rule, labels and the prompt-grouped split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from reward_model.config import SplitSettings
from reward_model.data import (
    Conversation,
    build_examples,
    encode,
    merge_ratings,
    record_from_dict,
    records_from_jsonl,
    render,
    split_by_prompt,
    split_completion,
)
from reward_model.errors import InvalidTrainingData
from reward_model.synthetic import synthetic_records

from .support import AXES


@pytest.fixture(scope="module")
def tokenizer(tiny_base: Path):
    return AutoTokenizer.from_pretrained(tiny_base)


def test_render_uses_the_chat_template_with_cot_then_response(tokenizer) -> None:
    conv = Conversation((("system", "你是医生"), ("user", "我头疼")), reasoning="患者 头疼", response="建议 休息")
    text = render(tokenizer, conv)
    assert text.startswith("<|im_start|>system\n你是医生<|im_end|>\n<|im_start|>user\n我头疼<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\n<think>\n患者 头疼\n</think>\n\n建议 休息<|im_end|>\n")


def test_long_sample_loses_the_start_of_its_context_and_keeps_the_response_tail(tokenizer) -> None:
    tail = "最后 请 马上 去 急诊 END"
    conv = Conversation((("user", "我 头疼 " * 400),), reasoning="患者 头疼 一直", response="建议 休息 " * 5 + tail)
    [short] = encode(tokenizer, [Conversation((("user", "我头疼"),), "想", tail)], 128)
    [long] = encode(tokenizer, [conv], 128)
    assert not short.truncated
    assert long.truncated
    assert len(long.input_ids) == 128 < long.n_tokens
    decoded = tokenizer.decode(long.input_ids)
    assert decoded.endswith(tail + "<|im_end|>\n")
    assert "<think>" in decoded  # only the start of the (long) user turn went


def test_split_by_prompt_never_straddles(tokenizer) -> None:
    records = synthetic_records(AXES, n_prompts=60, rollouts=4, seed=3)
    examples = build_examples(records, tokenizer, AXES, 256)
    splits = split_by_prompt(examples, SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=1))
    groups = [{e.group for e in part} for part in (splits.train, splits.val, splits.test)]
    assert all(groups), splits.sizes()
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert sum(splits.sizes().values()) == len(examples) == 240
    # A prompt's split depends on the prompt alone: adding data does not move it.
    more = build_examples(records + synthetic_records(AXES, n_prompts=20, seed=9), tokenizer, AXES, 256)
    again = split_by_prompt(more, SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=1))
    assert {e.group for e in splits.test} <= {e.group for e in again.test}


def test_records_from_jsonl_with_human_labels(tmp_path: Path, tokenizer) -> None:
    path = tmp_path / "labels.jsonl"
    fever, cough = [{"role": "user", "content": "我 发烧"}], [{"role": "user", "content": "我 咳嗽"}]
    rows = [
        {"messages": fever, "reasoning": "想", "response": "休息", "labels": {"safety": 4}},
        {"messages": cough, "completion": "<think>想</think>喝水", "scores": {"safety": [3, 5]}},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    records = records_from_jsonl(path, AXES)
    assert records[1].conversation.reasoning == "想" and records[1].conversation.response == "喝水"
    examples = build_examples(records, tokenizer, AXES, 256)
    assert examples[0].targets == (None, (0.0, 0.0, 0.0, 1.0, 0.0), None)
    assert examples[1].targets[1] == (0.0, 0.0, 0.5, 0.0, 0.5)

    path.write_text(json.dumps({**rows[0], "labels": {"safety": 7}}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidTrainingData, match="labels.jsonl:1"):
        records_from_jsonl(path, AXES)
    with pytest.raises(InvalidTrainingData, match="unknown axes"):
        record_from_dict({**rows[0], "labels": {"nope": 3}}, AXES)


def test_ratings_of_several_judges_pool_into_soft_labels() -> None:
    base = {"messages": [{"role": "user", "content": "头疼"}], "reasoning": "r", "response": "x"}
    merged = merge_ratings(
        [record_from_dict({**base, "scores": {"safety": 5}}), record_from_dict({**base, "scores": {"safety": 3}})]
    )
    assert len(merged) == 1 and sorted(merged[0].scores["safety"]) == [3, 5]


def test_split_completion() -> None:
    assert split_completion("<think>a</think>b") == ("a", "b")
    assert split_completion("a</think>b") == ("a", "b")
    assert split_completion("just an answer") == ("", "just an answer")
