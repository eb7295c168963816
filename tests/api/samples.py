"""Chinese and English request bodies for API tests."""

from __future__ import annotations

from typing import Any

PATIENT_ZH = "俺娘这两天心口窝疼得厉害，还老是喘不上气，咋整啊😭"
REASONING_ZH = (
    "1. 情绪感知：患者很着急、害怕。\n"
    "2. 扰动识别：“心口窝”是方言，指胸骨下方；“喘不上气”即呼吸困难。\n"
    "3. 话语纠正：患者母亲近两日胸痛明显，伴呼吸困难。\n"
    "4. 主诉提取：老年女性胸痛伴气促两天，求处理建议。\n"
    "5. 医学推理：需警惕急性冠脉综合征、肺栓塞、心衰，属急症。"
)
RESPONSE_ZH = (
    "别着急，您母亲胸口痛还喘不上气，可能是心脏的急症。请立刻拨打120或马上去最近医院急诊，路上让她保持休息，别走动。"
)


def sample(i: int = 0, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"样本-{i}",
        "messages": [{"role": "user", "content": PATIENT_ZH}],
        "reasoning": REASONING_ZH,
        "response": RESPONSE_ZH + ("" if i == 0 else f"（第{i}版）"),
    }
    body.update(changes)
    return body


def score_body(
    *samples: dict[str, Any], rubric: str = "prmed@1", judge: str = "loop", **options: Any
) -> dict[str, Any]:
    return {"rubric": rubric, "judge": judge, "samples": list(samples), "options": options}
