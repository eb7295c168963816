"""Small builders for store tests: samples, verdicts, rubrics."""

from __future__ import annotations

import hashlib
import time
import uuid

from judge.samples import Message, Sample, SampleIn, normalise
from judge.verdicts import AxisResult, AxisStatus, Usage, Verdict
from rubrics.schema import Rubric


def make_sample(text: str = "医生，我最近老是心口疼，是不是心脏出问题了？") -> Sample:
    return normalise(
        SampleIn(
            messages=[Message(role="user", content=text)],
            reasoning="患者情绪焦虑，口语化描述“心口疼”，需鉴别心源性与胃食管反流。",
            response="先别太担心。如果胸痛持续超过15分钟或伴出汗、气短，请立即就医。",
        )
    )


def cache_key_for(sample: Sample, rubric_hash: str = "r" * 64, profile_hash: str = "p" * 64) -> str:
    return hashlib.sha256(f"{rubric_hash}:{profile_hash}:{sample.hash}".encode()).hexdigest()


def make_verdict(
    sample: Sample,
    *,
    cache_key: str | None = None,
    complete: bool = True,
    created_at: float | None = None,
    rationale: str = "识别出患者的焦虑情绪，语气温和。",
    usage: Usage | None = None,
) -> Verdict:
    axes = {
        "emotion_perception": AxisResult(
            score=5, expected=4.83, mass=0.99, status=AxisStatus.ok, rationale=rationale, score_method="logprobs"
        ),
        "safety": (
            AxisResult(score=4, status=AxisStatus.ok, rationale="提示了红旗症状。")
            if complete
            else AxisResult.failed(AxisStatus.parse_error, "无法解析评分：缺少 score 字段")
        ),
    }
    return Verdict(
        id=uuid.uuid4().hex,
        cache_key=cache_key or cache_key_for(sample),
        sample_hash=sample.hash,
        rubric_ref="prmed@1",
        rubric_hash="r" * 64,
        judge="deepseek",
        profile_hash="p" * 64,
        axes=axes,
        usage=usage or Usage(calls=1, prompt_tokens=1234, completion_tokens=321, retries=1),
        error=None if complete else "parse_error on 1 axis",
        latency_ms=812.5,
        clipped=False,
        created_at=time.time() if created_at is None else created_at,
    )


def _text(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


def make_rubric(name: str = "mini", version: int = 1, threshold: float = 4.0) -> Rubric:
    anchors = {level: _text(f"{level} 分", f"score {level}") for level in range(1, 6)}
    return Rubric.model_validate(
        {
            "name": name,
            "version": version,
            "description": _text("测试用量表", "a test rubric"),
            "layers": [{"key": "cot", "title": _text("思维链", "chain of thought")}],
            "axes": [
                {
                    "key": "emotion_perception",
                    "layer": "cot",
                    "title": _text("情绪感知", "emotion perception"),
                    "description": _text("识别情绪", "recognises emotion"),
                    "anchors": anchors,
                },
                {
                    "key": "safety",
                    "layer": "cot",
                    "weight": 2.0,
                    "title": _text("安全", "safety"),
                    "description": _text("识别危险信号", "recognises red flags"),
                    "anchors": anchors,
                },
            ],
            "pass_policy": {"threshold": threshold},
        }
    )
