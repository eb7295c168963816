"""A verdict's JSON forms from one pass over its axes: the same bytes and content as serialising it whole."""

from __future__ import annotations

import orjson
import pytest
from pydantic import TypeAdapter

from judge.verdict_json import axes_json, verdict_json
from judge.verdicts import AxisResult, AxisStatus, GroupPlacement, Usage, Verdict
from tests.judge.store.factories import make_sample, make_verdict

_WHOLE: TypeAdapter[Verdict] = TypeAdapter(Verdict)

# Quotes, a backslash, an emoji and the very key the splice looks for, in every kind of text a verdict carries.
_TRICKY = '患者说“心口疼”，",\\"usage\\":{"calls":1} \\ 🙂 ,"usage":'


def _verdicts() -> list[Verdict]:
    sample = make_sample()
    plain = make_verdict(sample, rationale="识别出患者的焦虑情绪，语气温和。")
    failed = make_verdict(sample, complete=False)
    tricky = make_verdict(sample, rationale=_TRICKY).model_copy(
        update={
            "rubric_ref": 'prmed@1,"usage":{',
            "judge": _TRICKY,
            "error": _TRICKY,
            "axes": {
                "安全": AxisResult.failed(AxisStatus.truncated, "回答被截断", rationale=None),
                # An axis keyed like the field that follows the axes.
                "usage": AxisResult(
                    score=3,
                    expected=3.2500000000000004,
                    mass=0.97,
                    probabilities={1: 0.01, 2: 0.09, 3: 0.6, 4: 0.2, 5: 0.1},
                    status=AxisStatus.ok,
                    rationale=_TRICKY,
                    score_method="logprobs",
                    by_position={1: 3, 2: 4},
                ),
            },
            "usage": Usage(calls=2, prompt_tokens=9, cached_tokens=4, completion_tokens=3, retries=1, hedges=1),
            "group": GroupPlacement(hash="g" * 64, position=2, size=4),
            "reward": 0.1 + 0.2,
            "passed": False,
            "clipped": True,
            "latency_ms": 1e-05,
        }
    )
    no_axes = plain.model_copy(update={"axes": {}})
    return [plain, failed, tricky, no_axes]


def test_axes_sit_right_before_usage_after_string_fields_only() -> None:
    # verdict_json splices the axes in before the first ',"usage":', which is only sure to be the field's own key
    # while every field before it is a string (JSON escapes a string's quotes) and the axes come right before it.
    fields = list(Verdict.model_fields)
    assert fields[fields.index("usage") - 1] == "axes"
    before = fields[: fields.index("axes")]
    assert before and all(Verdict.model_fields[name].annotation in (str, "str") for name in before)


@pytest.mark.parametrize("verdict", _verdicts(), ids=["plain", "failed", "tricky", "no-axes"])
def test_the_cached_verdict_is_byte_for_byte_the_whole_serialisation(verdict: Verdict) -> None:
    whole = _WHOLE.dump_json(verdict)
    assert verdict_json(verdict, axes_json(verdict)) == whole
    assert verdict_json(verdict) == whole
    assert Verdict.model_validate_json(verdict_json(verdict, axes_json(verdict))) == verdict


@pytest.mark.parametrize("verdict", _verdicts(), ids=["plain", "failed", "tricky", "no-axes"])
def test_the_axes_json_is_the_content_the_row_always_had(verdict: Verdict) -> None:
    # Before, the row's axes were model_dump(mode="json") serialised by the engine: the same content.
    assert orjson.loads(axes_json(verdict)) == verdict.model_dump(mode="json", include={"axes"})["axes"]


def test_chinese_text_is_written_as_utf8_and_read_back_unchanged() -> None:
    rationale = "患者说“心口疼”，情绪焦虑；回答先安抚再给出就医指征。🙂"
    verdict = make_verdict(make_sample(), rationale=rationale)
    assert rationale.encode() in axes_json(verdict)
    assert rationale.encode() in verdict_json(verdict, axes_json(verdict))
    assert orjson.loads(axes_json(verdict))["emotion_perception"]["rationale"] == rationale
