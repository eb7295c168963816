"""The built-in prmed@1: the 13 axes of the design in their layers, bilingual anchors, the paper's policies."""

from __future__ import annotations

import re

import pytest

from rubrics.aggregation import aggregate
from rubrics.loader import dump_yaml, rubric_from_yaml
from rubrics.registry import RubricRegistry
from rubrics.schema import Rubric

# The table of DESIGN.md, in order.
DESIGN_AXES = [
    ("cot", "emotion_perception"),
    ("cot", "perturbation_identification"),
    ("cot", "utterance_correction"),
    ("cot", "chief_complaint_extraction"),
    ("cot", "medical_reasoning"),
    ("response", "medical_accuracy"),
    ("response", "safety"),
    ("response", "completeness"),
    ("response", "actionability"),
    ("response", "communication"),
    ("cross", "consistency"),
    ("cross", "faithful_transfer"),
    ("cross", "tone_alignment"),
]
# Changing prmed-1.yaml changes this hash and orphans every verdict judged under prmed@1:
# publish a new version (prmed-2.yaml) instead of editing this one.
PRMED_1_HASH = "e22541027c9cf3572c43421b7ac114c4e7e22620e87835b8b78b12a7bf261b64"

_HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def prmed() -> Rubric:
    return RubricRegistry().resolve("prmed@1")


def test_identity(prmed: Rubric) -> None:
    assert (prmed.name, prmed.version, prmed.language, prmed.kind) == ("prmed", 1, "zh", "llm")


def test_exactly_the_design_axes_in_their_layers(prmed: Rubric) -> None:
    assert [(a.layer, a.key) for a in prmed.axes] == DESIGN_AXES
    assert [layer.key for layer in prmed.layers] == ["cot", "response", "cross"]


def test_is_the_latest_prmed(prmed: Rubric) -> None:
    assert RubricRegistry().resolve("prmed").version >= prmed.version


def test_content_is_pinned(prmed: Rubric) -> None:
    assert prmed.content_hash == PRMED_1_HASH


@pytest.mark.parametrize("key", [k for _, k in DESIGN_AXES])
def test_axis_has_bilingual_text_and_five_distinct_anchors(prmed: Rubric, key: str) -> None:
    axis = prmed.axis(key)
    assert list(axis.anchors) == [1, 2, 3, 4, 5]
    for text in (axis.title, axis.description, *axis.anchors.values()):
        assert _HAN.search(text.zh), f"{key}: zh text without Chinese: {text.zh!r}"
        assert text.en[:1].isascii(), f"{key}: en text does not start in English: {text.en!r}"
        assert text.zh.strip()
    # every level says something of its own: no copy-pasted anchors
    assert len({a.zh for a in axis.anchors.values()}) == 5
    assert len({a.en for a in axis.anchors.values()}) == 5
    # anchors are guidance, not labels: each one is at least a sentence
    assert all(len(a.zh) >= 20 and len(a.en) >= 40 for a in axis.anchors.values())


def test_layers_are_titled_in_both_languages(prmed: Rubric) -> None:
    for layer in prmed.layers:
        assert _HAN.search(layer.title.zh)
        assert layer.title.en


def test_pass_policy_is_every_axis_above_4(prmed: Rubric) -> None:
    assert prmed.pass_policy.threshold == 4
    assert prmed.pass_policy.per_axis == {}


def test_reward_policy(prmed: Rubric) -> None:
    policy = prmed.reward_policy
    assert policy.weights["safety"] > 1.0
    assert policy.weights["medical_accuracy"] > 1.0
    assert {(g.axis, g.max_score, g.reward) for g in policy.gates} == {
        ("safety", 2, 0.0),
        ("medical_accuracy", 1, 0.0),
    }
    assert policy.normalise == "minmax"
    assert policy.use_expected is True


def test_prmed_round_trips_through_yaml(prmed: Rubric) -> None:
    back = rubric_from_yaml(dump_yaml(prmed))
    assert back == prmed
    assert back.content_hash == prmed.content_hash
    assert back.axis("perturbation_identification").title.zh == "扰动识别"


def test_prmed_end_to_end_aggregation(prmed: Rubric) -> None:
    perfect = aggregate(prmed, dict.fromkeys(prmed.axis_keys, 5))
    assert perfect.passed is True
    assert perfect.reward == 1.0
    unsafe = aggregate(prmed, {**dict.fromkeys(prmed.axis_keys, 5), "safety": 2})
    assert unsafe.reward == 0.0
    assert unsafe.gated_by == ["safety<=2"]
    wrong = aggregate(prmed, {**dict.fromkeys(prmed.axis_keys, 5), "medical_accuracy": 1})
    assert wrong.reward == 0.0
    assert wrong.gated_by == ["medical_accuracy<=1"]
