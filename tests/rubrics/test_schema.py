"""Schema validation: every structural mistake in a rubric is rejected with a message that says where."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from rubrics.schema import Rubric
from tests.rubrics.builders import axis, rubric_dict


def _error_text(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        Rubric.model_validate(data)
    return str(info.value)


def test_valid_base_rubric_has_its_axes_in_order() -> None:
    rubric = Rubric.model_validate(rubric_dict())
    assert rubric.ref == "tiny@1"
    assert rubric.axis_keys == ["reasoning", "accuracy", "safety"]
    assert list(rubric.axis("safety").anchors) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("levels", "shown"),
    [((1, 2, 3, 4), "[1, 2, 3, 4]"), ((1, 2, 3, 4, 5, 6), "[1, 2, 3, 4, 5, 6]"), ((0, 1, 2, 3, 4), "[0, 1, 2, 3, 4]")],
)
def test_anchors_must_be_exactly_levels_1_to_5(levels: tuple[int, ...], shown: str) -> None:
    data = rubric_dict()
    data["axes"][1]["anchors"] = {level: {"zh": "文", "en": "text"} for level in levels}
    text = _error_text(data)
    assert "anchors must define exactly the levels 1..5" in text
    assert shown in text


def test_anchor_text_must_not_be_empty() -> None:
    data = rubric_dict()
    data["axes"][0]["anchors"][3]["en"] = ""
    assert "axes.0.anchors.3.en" in _error_text(data)


def test_anchor_needs_both_languages() -> None:
    data = rubric_dict()
    del data["axes"][0]["anchors"][2]["zh"]
    assert "axes.0.anchors.2.zh" in _error_text(data)


def test_axis_in_unknown_layer_is_rejected() -> None:
    data = rubric_dict(axes=[*rubric_dict()["axes"], axis("tone", "crosss")])
    text = _error_text(data)
    assert "axes[3].layer" in text
    assert "unknown layer 'crosss'" in text


def test_gate_on_unknown_axis_is_rejected() -> None:
    data = rubric_dict(reward_policy={"gates": [{"axis": "saftey", "max_score": 2, "reward": 0.0}]})
    text = _error_text(data)
    assert "reward_policy.gates[0].axis" in text
    assert "'saftey'" in text


def test_weights_and_pass_overrides_must_name_known_axes() -> None:
    assert "reward_policy.weights names unknown axes ['nope']" in _error_text(
        rubric_dict(reward_policy={"weights": {"nope": 2.0}})
    )
    assert "pass_policy.per_axis names unknown axes ['nope']" in _error_text(
        rubric_dict(pass_policy={"per_axis": {"nope": 3}})
    )


def test_duplicate_axis_keys_are_rejected_and_named() -> None:
    base = rubric_dict()
    data = rubric_dict(axes=[*base["axes"], copy.deepcopy(base["axes"][2])])
    text = _error_text(data)
    assert "axis keys must be unique" in text
    assert "['safety']" in text


def test_duplicate_layer_keys_are_rejected_and_named() -> None:
    base = rubric_dict()
    data = rubric_dict(layers=[*base["layers"], copy.deepcopy(base["layers"][0])])
    text = _error_text(data)
    assert "layer keys must be unique" in text
    assert "['cot']" in text


def test_unknown_fields_are_rejected() -> None:
    data = rubric_dict()
    data["axes"][0]["wieght"] = 2
    assert "axes.0.wieght" in _error_text(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "Bad Name"), ("version", 0), ("language", "fr"), ("kind", "oracle")],
)
def test_bad_top_level_values_are_rejected(field: str, value: Any) -> None:
    assert field in _error_text(rubric_dict(**{field: value}))


def test_gate_bounds_are_checked() -> None:
    text = _error_text(rubric_dict(reward_policy={"gates": [{"axis": "safety", "max_score": 2, "reward": 1.5}]}))
    assert "reward_policy.gates.0.reward" in text


def test_rubric_is_frozen() -> None:
    rubric = Rubric.model_validate(rubric_dict())
    with pytest.raises(ValidationError):
        rubric.version = 2  # type: ignore[misc]
