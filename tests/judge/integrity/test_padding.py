"""CoT padding with the rubric's axis titles."""

from __future__ import annotations

from judge.integrity.padding import keyword_padding
from rubrics.registry import RubricRegistry

PRMED = RubricRegistry().resolve("prmed@2")
HONEST = (
    "1. 情绪感知：家属很焦急。2. 扰动识别：“心口窝”是口语。3. 表述纠正：老年女性胸痛两天。"
    "4. 主诉提取：胸痛伴气短。5. 医学推理：需排除急性冠脉综合征。"
)


def test_a_cot_that_does_the_five_steps_is_not_padding() -> None:
    assert not keyword_padding(HONEST, PRMED)
    assert not keyword_padding("", PRMED)


def test_repeating_the_step_names_is_padding() -> None:
    words = "情绪感知 扰动识别 表述纠正 主诉提取 医学推理 "
    assert keyword_padding(HONEST + words * 4, PRMED)  # a large share of the text
    assert keyword_padding(HONEST + ("很长的推理内容。" * 200) + words * 6, PRMED)  # too many mentions
    assert keyword_padding("Emotion perception, safety, medical accuracy, completeness. " * 4, PRMED)
