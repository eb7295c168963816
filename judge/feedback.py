"""Refinement feedback: a verdict becomes instructions for the generator, in the rubric's language.

For every axis at or below its pass threshold: the score, the judge's rationale, the anchor of the next level
up and the anchor of the lowest passing level. Pure: no I/O, so refine loops elsewhere can use it as is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from judge.verdicts import AxisResult, AxisStatus, Verdict
from rubrics.schema import Language, Rubric


class AxisScore(BaseModel):
    """What feedback needs of one axis result (a verdict's axis or a result's axis both fit)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    score: Annotated[int | None, Field(ge=1, le=5)] = None
    status: AxisStatus = AxisStatus.ok
    rationale: str | None = None


class LevelAnchor(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: int
    anchor: str


class AxisFeedback(BaseModel):
    model_config = ConfigDict(frozen=True)

    axis: str
    title: str
    score: int
    threshold: float
    rationale: str | None
    # The level just above the score, and the lowest level that passes (the same level when one step is enough).
    next_level: LevelAnchor
    target: LevelAnchor


class Feedback(BaseModel):
    """Refinement instructions for one verdict."""

    model_config = ConfigDict(frozen=True)

    rubric: str
    language: Language
    # None when an axis has no score and every scored axis passes: nothing can be said about those axes.
    passed: bool | None
    failing: list[AxisFeedback]
    unscored: list[str]
    instructions: str


_TEXT: dict[Language, dict[str, str]] = {
    "zh": {
        "head": "请根据评审意见修改你的回答（思维链和最终回复都可以改），使下列维度达标（评分量表 {ref}）：",
        "axis": "{i}. {title}（{key}）：当前 {score} 分，需高于 {threshold} 分。",
        "rationale": "   评审理由：{text}",
        "next": "   下一档（{level} 分）的标准：{text}",
        "target": "   达标（{level} 分）的标准：{text}",
        "tail": "其余维度已经达标：修改时保留它们的优点，仍按五个步骤写思维链，并给出完整的最终回复。",
        "passed": "所有维度均已达标，无需修改。",
        "unscored": "以下维度未能评分，本次不作要求：{keys}。",
    },
    "en": {
        "head": "Revise your answer (the chain of thought and the final response may both change) so that these "
        "axes pass (rubric {ref}):",
        "axis": "{i}. {title} ({key}): scored {score}, must be above {threshold}.",
        "rationale": "   Reviewer's rationale: {text}",
        "next": "   Next level up ({level}): {text}",
        "target": "   Passing level ({level}): {text}",
        "tail": "The other axes already pass: keep their strengths, still write the chain of thought in the five "
        "steps, and give a complete final response.",
        "passed": "Every axis passes; nothing to revise.",
        "unscored": "These axes could not be scored and are not asked for here: {keys}.",
    },
}


def _number(value: float) -> str:
    return f"{value:g}"


def axis_scores(verdict: Verdict) -> dict[str, AxisScore]:
    return {key: _from_result(result) for key, result in verdict.axes.items()}


def _from_result(result: AxisResult) -> AxisScore:
    return AxisScore(score=result.score, status=result.status, rationale=result.rationale)


def build_feedback(rubric: Rubric, axes: Mapping[str, AxisScore], *, language: Language | None = None) -> Feedback:
    """Instructions for the axes of ``rubric`` that fail in ``axes``; axes not in ``axes`` count as unscored.

    Raises ``KeyError`` naming an axis that the rubric does not have.
    """
    unknown = [key for key in axes if key not in set(rubric.axis_keys)]
    if unknown:
        raise KeyError(unknown[0])
    lang: Language = language or rubric.language
    text = _TEXT[lang]
    failing: list[AxisFeedback] = []
    unscored: list[str] = []
    for axis in rubric.axes:
        result = axes.get(axis.key)
        if result is None or result.score is None or result.status is not AxisStatus.ok:
            unscored.append(axis.key)
            continue
        threshold = rubric.pass_policy.threshold_for(axis.key)
        if result.score > threshold:
            continue
        target = min(5, math.floor(threshold) + 1)
        nxt = min(5, result.score + 1)
        failing.append(
            AxisFeedback(
                axis=axis.key,
                title=axis.title.get(lang),
                score=result.score,
                threshold=threshold,
                rationale=result.rationale,
                next_level=LevelAnchor(level=nxt, anchor=axis.anchors[nxt].get(lang)),
                target=LevelAnchor(level=target, anchor=axis.anchors[target].get(lang)),
            )
        )
    passed: bool | None = False if failing else (None if unscored else True)
    lines: list[str] = []
    if failing:
        lines.append(text["head"].format(ref=rubric.ref))
        for i, item in enumerate(failing, start=1):
            lines.append(
                text["axis"].format(
                    i=i, title=item.title, key=item.axis, score=item.score, threshold=_number(item.threshold)
                )
            )
            if item.rationale:
                lines.append(text["rationale"].format(text=item.rationale.strip()))
            lines.append(text["next"].format(level=item.next_level.level, text=item.next_level.anchor))
            if item.target.level != item.next_level.level:
                lines.append(text["target"].format(level=item.target.level, text=item.target.anchor))
        lines.append(text["tail"])
    elif not unscored:
        lines.append(text["passed"])
    if unscored:
        lines.append(text["unscored"].format(keys=", ".join(unscored)))
    return Feedback(
        rubric=rubric.ref,
        language=lang,
        passed=passed,
        failing=failing,
        unscored=unscored,
        instructions="\n".join(lines),
    )
