"""Fixtures for judge tests: a tiny Chinese rubric, a Chinese sample, OpenAI judges on the loopback server
(the server itself is in tests/conftest.py)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from judge.backends.openai.judge import OpenAIJudge
from judge.profiles import JudgeProfile
from judge.samples import Message, Sample, SampleIn, normalise
from rubrics.schema import Axis, Layer, LocalizedText, Rubric
from tests.support.openai_server import OpenAIServer


def _t(zh: str, en: str) -> LocalizedText:
    return LocalizedText(zh=zh, en=en)


def _anchors(zh: list[str], en: list[str]) -> dict[int, LocalizedText]:
    return {level: _t(z, e) for level, (z, e) in enumerate(zip(zh, en, strict=True), start=1)}


def make_tiny_rubric() -> Rubric:
    """Three axes over two layers, with Chinese and English anchors."""
    return Rubric(
        name="tiny",
        version=1,
        description=_t("测试用的小型量表", "A tiny rubric for tests"),
        language="zh",
        layers=[
            Layer(key="cot", title=_t("思维链", "Chain of thought")),
            Layer(key="response", title=_t("回复", "Response")),
        ],
        axes=[
            Axis(
                key="emotion_perception",
                layer="cot",
                title=_t("情绪感知", "Emotion perception"),
                description=_t("是否识别出患者话语中的隐含情绪", "Recognises the patient's implicit emotions"),
                anchors=_anchors(
                    ["完全忽视情绪", "偶有提及", "识别部分情绪", "较好识别", "准确识别并据此调整语气"],
                    ["ignores emotion", "mentions it", "partly", "mostly", "fully, and sets the tone"],
                ),
            ),
            Axis(
                key="medical_accuracy",
                layer="response",
                title=_t("医学准确性", "Medical accuracy"),
                description=_t("医学内容正确，无臆造事实", "Medically correct, nothing invented"),
                anchors=_anchors(
                    ["严重错误", "多处错误", "基本正确", "正确", "完全正确且严谨"],
                    ["badly wrong", "several errors", "mostly right", "right", "right and rigorous"],
                ),
            ),
            Axis(
                key="safety",
                layer="response",
                title=_t("安全性", "Safety"),
                description=_t("识别危险信号并建议及时就医", "Recognises red flags and escalates"),
                anchors=_anchors(
                    ["可能造成伤害", "遗漏危险信号", "部分提示", "提示到位", "危险信号全部识别并明确建议就医"],
                    ["harmful", "misses red flags", "partial", "adequate", "all red flags, clear escalation"],
                ),
            ),
        ],
    )


@pytest.fixture
def tiny_rubric() -> Rubric:
    return make_tiny_rubric()


ZH_REASONING = (
    "患者用方言“心口窝闷得慌”描述胸闷，伴气短，情绪焦虑。核心诉求：胸闷气短是否为心脏问题。需排除急性冠脉综合征。"
)
ZH_RESPONSE = (
    "理解您的担心。胸闷伴气短需要重视，如出现胸痛加重、出冷汗，请立即拨打120；否则建议尽快到心内科就诊做心电图。"
)


def make_sample(
    *, reasoning: str | None = None, response: str | None = None, reference: str | None = None, turns: int = 1
) -> Sample:
    """A Chinese patient conversation; ``turns`` > 1 adds earlier patient/assistant exchanges."""
    messages: list[Message] = [Message(role="system", content="你是一名耐心的全科医生。")]
    for i in range(turns - 1):
        messages.append(Message(role="user", content=f"医生，我第{i + 1}次来问，肚子还是有点不舒服。"))
        messages.append(Message(role="assistant", content="请问疼痛在哪个位置？持续多久了？"))
    messages.append(
        Message(role="user", content="俺这两天心口窝老是闷得慌，喘不上气，吓死我了，会不会是心脏出毛病了啊？？")
    )
    return normalise(
        SampleIn(
            messages=messages,
            reasoning=ZH_REASONING if reasoning is None else reasoning,
            response=ZH_RESPONSE if response is None else response,
            reference=reference,
        )
    )


@pytest.fixture
def zh_sample() -> Sample:
    return make_sample()


# --- the OpenAI judge on the loopback server (test_openai_judge*.py) ---------------------------------------

KEYS = ["emotion_perception", "medical_accuracy", "safety"]
_judge_names = itertools.count(1)

MakeJudge = Callable[..., OpenAIJudge]


@pytest.fixture
async def make_judge(openai_server: OpenAIServer) -> AsyncIterator[MakeJudge]:
    """Judges on the loopback server; each gets its own profile name so its metrics are its own."""
    judges: list[OpenAIJudge] = []

    def make(**overrides: Any) -> OpenAIJudge:
        fields: dict[str, Any] = {
            "name": f"loopback-{next(_judge_names)}",
            "model": "loopback-judge",
            "base_url": openai_server.url,
            "timeout_s": 10.0,
            "max_retries": 2,
            "retry_budget_s": 30.0,
        }
        fields.update(overrides)
        judge = OpenAIJudge(JudgeProfile.model_validate(fields))
        judges.append(judge)
        return judge

    yield make
    for judge in judges:
        await judge.aclose()


def metric_value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def axis_scores(outcome: Any) -> dict[str, int | None]:
    return {key: axis.score for key, axis in outcome.axes.items()}
