"""The generated samples every cost benchmark section judges: Chinese, of realistic size."""

from __future__ import annotations

from typing import Any

from bench.common import PATIENTS
from judge.samples import Sample, SampleIn, normalise


def sample_body(i: int, run: str = "") -> dict[str, Any]:
    """A Chinese sample of realistic size (about 600 tokens of conversation, CoT and response)."""
    patient = PATIENTS[i % len(PATIENTS)]
    reasoning = (
        f"1. 情绪感知：患者语气焦急、担心，反复追问（{run}{i}），需要先安抚情绪，再给出明确建议。\n"
        f"2. 扰动识别：“{patient[:12]}”属于口语化、方言化表达，夹杂情绪词，部分描述含糊，需要澄清部位、"
        "持续时间、诱因、伴随症状和既往史。\n"
        f"3. 话语纠正：患者（编号{i}）描述的是：{patient}。规范表述为：近期出现相关症状，程度明显，影响生活。\n"
        "4. 主诉提取：核心诉求是想知道症状是否危险、是否需要马上去医院、在家可以先做什么。\n"
        "5. 医学推理：首先排除急危重症（如急性冠脉综合征、肺栓塞、脑膜炎、严重感染等），结合年龄、起病方式、"
        "伴随症状判断；若出现胸痛加重、意识改变、高热不退、呼吸困难，应立即急诊；否则建议尽快门诊就诊，"
        f"完善血常规、心电图等检查，并观察症状变化。编号{run}{i}。"
    )
    response = (
        f"别太担心，我理解您现在很着急（{run}{i}）。根据您说的情况，建议这样做：\n"
        "1. 如果出现胸痛加重、出冷汗、意识不清、呼吸明显困难或高热不退，请立即拨打120或去最近的医院急诊。\n"
        "2. 如果症状暂时平稳，建议今天或明天尽快到医院相应科室就诊，做必要的检查，不要自行乱用药。\n"
        "3. 在家先注意休息，多喝温水，记录症状出现的时间和变化，就诊时告诉医生。\n"
        "有任何变化随时就医，祝您早日康复。"
    )
    return {
        "id": f"s{run}{i}",
        "messages": [{"role": "user", "content": f"{patient}（第{run}{i}号患者）"}],
        "reasoning": reasoning,
        "response": response,
    }


def make_samples(n: int, run: str = "") -> list[Sample]:
    return [normalise(SampleIn.model_validate(sample_body(i, run))) for i in range(n)]
