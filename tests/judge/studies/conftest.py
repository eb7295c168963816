"""Study fixtures: the prmed rubric and Chinese samples."""

from __future__ import annotations

from typing import Any

import pytest

from judge.samples import Message, Sample, SampleIn, normalise
from judge.studies.schemas import StudyCreate
from rubrics.registry import RubricRegistry
from rubrics.schema import Rubric

RATERS = ["张医生", "李医生", "王医生"]


@pytest.fixture(scope="session")
def prmed() -> Rubric:
    return RubricRegistry().resolve("prmed")


def study_sample(i: int) -> SampleIn:
    return SampleIn(
        id=f"样本-{i}",
        messages=[Message(role="user", content=f"医生，我妈这两天心口窝疼，喘不上气，咋整啊（第{i}例）")],
        reasoning="1. 情绪感知：患者焦虑。\n2. 扰动识别：“心口窝”指胸骨下方。",
        response=f"请立即拨打120或去急诊（第{i}例）。",
    )


def samples(n: int) -> list[Sample]:
    return [normalise(study_sample(i)) for i in range(n)]


def create_request(n: int = 6, **changes: Any) -> StudyCreate:
    body: dict[str, Any] = {
        "name": "胸痛研究",
        "rubric": "prmed",
        "raters": RATERS,
        "per_sample": 2,
        "samples": [study_sample(i) for i in range(n)],
    }
    body.update(changes)
    return StudyCreate.model_validate(body)


def all_scores(rubric: Rubric, score: int = 4) -> dict[str, int]:
    return dict.fromkeys(rubric.axis_keys, score)
