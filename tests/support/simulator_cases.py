"""Chinese patient cases and a judges file with simulator and policy profiles on the loopback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.openai_server import OpenAIServer

CASE_ZH: dict[str, Any] = {
    "id": "case-chest",
    "persona": {"age": 58, "sex": "male", "speaker": "patient"},
    "chief_complaint": "胸口闷痛三天，爬楼梯时加重，休息后缓解。",
    "hidden_facts": [
        {"topic": "用药", "fact": "我一直在吃阿司匹林，每天一片"},
        {"topic": "吸烟", "fact": "抽烟三十年了，一天一包"},
    ],
    "emotional_state": "焦虑，担心是心脏病",
    "language": "zh",
    "perturbation": {"types": ["colloquial", "emotional"], "intensity": "moderate"},
    "opening": "医生，我这心口闷得慌，三天了，一爬楼就疼，歇会儿又好了，是不是心脏出毛病了啊？",
    "max_turns": 3,
}

CASE_RELATIVE_ZH: dict[str, Any] = {
    "id": "case-fever",
    "persona": {"age": 4, "sex": "female", "speaker": "relative", "relation": "妈妈"},
    "chief_complaint": "孩子发烧两天，最高39度，吃了退烧药能退但又烧起来。",
    "hidden_facts": [{"topic": "皮疹", "fact": "昨天开始身上起了些小红点"}],
    "emotional_state": "着急",
    "perturbation": {"types": ["vague", "dialectal", "typo_homophone"], "intensity": "heavy"},
    "opening": "医生俺家闺女发烧两天了，最高三十九度，吃了退烧药退了又烧，咋办啊",
    "max_turns": 2,
}


def write_simulator_judges(path: Path, server: OpenAIServer) -> Path:
    """A judge ``loop``, a simulator ``patient`` and a policy ``policy``, all on the loopback server."""
    base = {"base_url": server.url, "timeout_s": 5, "max_retries": 1}
    path.write_text(
        yaml.safe_dump(
            {
                "judges": [{"name": "loop", "backend": "openai", "model": "judge-model", **base}],
                "simulators": [{"name": "patient", "model": "sim-model", "temperature": 0.8, **base}],
                "policies": [{"name": "policy", "model": "policy-model", "temperature": 0.0, **base}],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    return path
