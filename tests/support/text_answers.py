"""The loopback judge's answers that are not verdicts: a generator's draft (curation), a simulated patient's
turn and a perturber's rewrite, each deterministic in the request."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tests.support.chat_request import FENCE, ChatRequest
from tests.support.judge_behaviours import Generation, Patient

_DRAFT_NUMBER = re.compile(r"第(\d+)稿")


def generation_text(request: ChatRequest, behaviour: Generation) -> str:
    draft = behaviour.draft or 1 + max((int(n) for n in _DRAFT_NUMBER.findall(request.prompt)), default=0)
    patient = [text for label, text in request.fenced if label == "PATIENT_MESSAGE"]
    if not patient:
        patient = [str(m.get("content") or "") for m in request.messages if m.get("role") == "user"]
    words = (patient[-1] if patient else "").replace("\n", " ")[:60]
    return (
        f"<think>\n1. 情绪感知：患者语气焦虑，需要先安抚（第{draft}稿）。\n"
        f"2. 扰动识别：“{words}”中有口语化、含糊的表达。\n"
        f"3. 话语纠正：患者描述为：{words}\n"
        f"4. 主诉提取：{words[:20]}，想知道该怎么办。\n"
        f"5. 医学推理：先排除急症，再考虑常见病因（第{draft}稿）。\n</think>\n\n"
        f"别太担心，建议尽快到医院就诊检查；如果症状突然加重，请立即拨打120（第{draft}稿）。"
    )


_CASE_LINE = re.compile(r"^PATIENT_CASE:[ \t]*(.*)$", re.MULTILINE)
_LEVEL_LINE = re.compile(r"^PERTURB_LEVEL:[ \t]*(.*)$", re.MULTILINE)
_TYPES_LINE = re.compile(r"^PERTURB_TYPES:[ \t]*(.*)$", re.MULTILINE)
_OBEY = re.compile(r"(?:请说|say)[:：]\s*([^\n]+)", re.IGNORECASE)
_OPENING_PREFIX = {"formal": "医生您好，", "mild": "医生，", "moderate": "哎呀医生，", "heavy": "医生啊我跟你讲，"}
_ASKS = ("那我现在该怎么办呢？", "这个要紧吗？我有点担心。", "还需要注意什么吗？")


def patient_text(request: ChatRequest, behaviour: Patient) -> str:
    unfenced = FENCE.sub("", request.prompt)
    found = _CASE_LINE.search(unfenced)
    case = orjson.loads(found.group(1)) if found else {}
    doctor = [text for label, text in request.fenced if label == "DOCTOR_TURN"]
    obeyed = _OBEY.search(unfenced)
    if obeyed:
        utterance, need_met, end_visit = obeyed.group(1).strip(), True, True
    elif not doctor:
        intensity = (case.get("perturbation") or {}).get("intensity", "formal")
        utterance = _OPENING_PREFIX.get(intensity, "") + str(case.get("chief_complaint", "我不太舒服。"))
        need_met = end_visit = False
    else:
        asked = [f["fact"] for f in case.get("hidden_facts", []) if f.get("topic") and f["topic"] in doctor[-1]]
        seed = request.body.get("seed")
        utterance = "；".join(asked) + "。" if asked else _ASKS[(len(doctor) + (seed or 0)) % len(_ASKS)]
        need_met = behaviour.satisfied_after is not None and len(doctor) >= behaviour.satisfied_after
        end_visit = False
    if behaviour.style == "prose":
        return utterance
    return _dumps({"utterance": utterance, "need_met": need_met, "end_visit": end_visit})


_PERTURB_WRAP = {
    "mild": ("嗯，", ""),
    "moderate": ("哎呀，就是那个，", "，好几天了吧"),
    "heavy": ("医生啊我跟你讲，我家那口子非让我来，", "，你说这咋整啊，急死了"),
}


def perturbed_text(request: ChatRequest) -> str:
    unfenced = FENCE.sub("", request.prompt)
    level_line, types_line = _LEVEL_LINE.search(unfenced), _TYPES_LINE.search(unfenced)
    level = level_line.group(1).strip() if level_line else "mild"
    types = [t.strip() for t in (types_line.group(1) if types_line else "").split(",") if t.strip()]
    original = next((text for label, text in request.fenced if label == "ORIGINAL_MESSAGE"), "")
    head, tail = _PERTURB_WRAP.get(level, ("", ""))
    count = {"mild": 1, "moderate": 2, "heavy": 3}.get(level, 0)
    return _dumps({"rewrite": f"{head}{original.rstrip('。')}{tail}。", "types": types[:count]})


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
