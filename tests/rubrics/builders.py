"""Small rubrics for tests: two layers, three axes, every policy at a value the tests can predict."""

from __future__ import annotations

import copy
from typing import Any

from rubrics.schema import Rubric


def anchors(tag: str) -> dict[int, dict[str, str]]:
    return {level: {"zh": f"{tag}：{level} 分", "en": f"{tag}: level {level}"} for level in range(1, 6)}


def axis(key: str, layer: str, *, weight: float = 1.0, title_zh: str | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "layer": layer,
        "weight": weight,
        "title": {"zh": title_zh or f"维度{key}", "en": f"Axis {key}"},
        "description": {"zh": f"{key} 的说明", "en": f"About {key}"},
        "anchors": anchors(key),
    }


BASE: dict[str, Any] = {
    "name": "tiny",
    "version": 1,
    "description": {"zh": "测试用量表", "en": "A rubric for tests"},
    "language": "zh",
    "kind": "llm",
    "layers": [
        {"key": "cot", "title": {"zh": "思维链", "en": "Chain of thought"}},
        {"key": "response", "title": {"zh": "回复", "en": "Response"}},
    ],
    "axes": [
        axis("reasoning", "cot", title_zh="医学推理"),
        axis("accuracy", "response", title_zh="医学准确性"),
        axis("safety", "response", title_zh="安全性"),
    ],
    "pass_policy": {"threshold": 4},
    "reward_policy": {
        "weights": {},
        "gates": [],
        "normalise": "minmax",
        "use_expected": True,
    },
}


def rubric_dict(**overrides: Any) -> dict[str, Any]:
    """A deep copy of BASE with top-level keys replaced; reward_policy/pass_policy entries are merged."""
    data = copy.deepcopy(BASE)
    for key, value in overrides.items():
        if key in ("reward_policy", "pass_policy"):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def make_rubric(**overrides: Any) -> Rubric:
    return Rubric.model_validate(rubric_dict(**overrides))
