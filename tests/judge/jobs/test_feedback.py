"""Refinement feedback: failing axes, the judge's rationales, the next level's and the passing level's anchors."""

from __future__ import annotations

import pytest

from judge.feedback import AxisScore, axis_scores, build_feedback
from judge.verdicts import AxisResult, AxisStatus, Usage, Verdict
from rubrics.registry import RubricRegistry
from rubrics.schema import PassPolicy
from tests.judge.conftest import make_tiny_rubric


def test_failing_axes_get_their_rationale_and_the_anchors_above_them() -> None:
    rubric = make_tiny_rubric()
    feedback = build_feedback(
        rubric,
        {
            "emotion_perception": AxisScore(score=2, rationale="没有回应患者的恐惧"),
            "medical_accuracy": AxisScore(score=4, rationale="基本正确"),
            "safety": AxisScore(score=5),
        },
    )
    assert feedback.passed is False
    assert feedback.language == "zh"
    assert [f.axis for f in feedback.failing] == ["emotion_perception", "medical_accuracy"]
    emotion, accuracy = feedback.failing
    assert (emotion.next_level.level, emotion.next_level.anchor) == (3, "识别部分情绪")
    assert (emotion.target.level, emotion.target.anchor) == (5, "准确识别并据此调整语气")
    assert accuracy.next_level == accuracy.target
    text = feedback.instructions
    assert "情绪感知（emotion_perception）：当前 2 分，需高于 4 分。" in text
    assert "评审理由：没有回应患者的恐惧" in text
    assert "下一档（3 分）的标准：识别部分情绪" in text and "达标（5 分）的标准：准确识别并据此调整语气" in text
    # One step is enough for accuracy: its passing level is not repeated.
    assert text.count("完全正确且严谨") == 1
    assert "安全性" not in text


def test_english_and_per_axis_thresholds() -> None:
    rubric = make_tiny_rubric().model_copy(update={"pass_policy": PassPolicy(threshold=4, per_axis={"safety": 2})})
    scores = {"emotion_perception": 5, "medical_accuracy": 5, "safety": 2}
    feedback = build_feedback(rubric, {k: AxisScore(score=v) for k, v in scores.items()}, language="en")
    assert [f.axis for f in feedback.failing] == ["safety"]
    (safety,) = feedback.failing
    assert safety.target.level == 3 and safety.next_level.level == 3
    assert "Safety (safety): scored 2, must be above 2." in feedback.instructions
    assert "Next level up (3): partial" in feedback.instructions


def test_a_passing_verdict_needs_nothing_and_unscored_axes_are_named() -> None:
    rubric = make_tiny_rubric()
    passing = build_feedback(rubric, {key: AxisScore(score=5) for key in rubric.axis_keys})
    assert passing.passed is True and passing.failing == [] and passing.instructions == "所有维度均已达标，无需修改。"
    partial = build_feedback(
        rubric,
        {
            "emotion_perception": AxisScore(score=5),
            "medical_accuracy": AxisScore(status=AxisStatus.parse_error),
        },
    )
    assert partial.passed is None
    assert partial.unscored == ["medical_accuracy", "safety"]
    assert "medical_accuracy, safety" in partial.instructions


def test_from_a_stored_verdict_on_prmed() -> None:
    rubric = RubricRegistry().resolve("prmed")
    axes = {key: AxisResult(score=5, status=AxisStatus.ok) for key in rubric.axis_keys}
    axes["emotion_perception"] = AxisResult(score=4, status=AxisStatus.ok, rationale="漏掉了隐含的担忧")
    verdict = Verdict(
        id="v1", cache_key="k", sample_hash="s", rubric_ref=rubric.ref, rubric_hash=rubric.content_hash,
        judge="loop", profile_hash="p", axes=axes, usage=Usage(), latency_ms=1.0, created_at=0.0,
    )  # fmt: skip
    feedback = build_feedback(rubric, axis_scores(verdict))
    assert [f.axis for f in feedback.failing] == ["emotion_perception"]
    assert feedback.failing[0].target.anchor.startswith("准确识别所有主要情绪信号")


def test_an_axis_the_rubric_lacks_is_refused() -> None:
    with pytest.raises(KeyError, match="tone"):
        build_feedback(make_tiny_rubric(), {"tone": AxisScore(score=3)})
