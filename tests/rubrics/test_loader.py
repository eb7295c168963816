"""Loading rubrics from YAML and dicts: errors name the wrong field, YAML round-trips (Chinese included)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rubrics.errors import InvalidRubric, RubricNotFound
from rubrics.loader import dump_yaml, load_rubric, load_rubric_file, rubric_from_dict, rubric_from_yaml
from rubrics.schema import Rubric
from tests.rubrics.builders import make_rubric, rubric_dict


def _yaml(data: object) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def test_dict_loads_into_rubric() -> None:
    rubric = rubric_from_dict(rubric_dict())
    assert isinstance(rubric, Rubric)
    assert rubric.ref == "tiny@1"


def test_bad_anchor_message_names_path_and_axis() -> None:
    data = rubric_dict()
    del data["axes"][2]["anchors"][5]
    with pytest.raises(InvalidRubric) as info:
        rubric_from_dict(data)
    err = info.value
    assert err.field == "axes[2].anchors"
    assert "axes[2].anchors (axis 'safety')" in err.message
    assert "levels 1..5" in err.message
    assert err.status_code == 422
    # pydantic's "Value error, " prefix means nothing to a rubric author
    assert "Value error" not in err.message


def test_missing_nested_field_is_named() -> None:
    data = rubric_dict()
    del data["axes"][0]["description"]["en"]
    with pytest.raises(InvalidRubric) as info:
        rubric_from_dict(data)
    assert info.value.field == "axes[0].description.en"
    assert "Field required" in info.value.message


def test_model_level_error_takes_its_field_from_the_message() -> None:
    data = rubric_dict(reward_policy={"gates": [{"axis": "nope", "max_score": 2}]})
    with pytest.raises(InvalidRubric) as info:
        rubric_from_dict(data)
    assert info.value.field == "reward_policy.gates[0].axis"
    assert "'nope'" in info.value.message


def test_unknown_layer_error_names_axis_path() -> None:
    data = rubric_dict()
    data["axes"][1]["layer"] = "reply"
    with pytest.raises(InvalidRubric) as info:
        rubric_from_dict(data)
    assert info.value.field == "axes[1].layer"
    assert "'reply'" in info.value.message


def test_several_errors_are_all_reported() -> None:
    data = rubric_dict(version=0)
    data["axes"][0]["weight"] = -1
    with pytest.raises(InvalidRubric) as info:
        rubric_from_dict(data)
    assert info.value.field == "version"
    assert "version" in info.value.message
    assert "axes[0].weight" in info.value.message


def test_source_is_named_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    data = rubric_dict()
    data["axes"][0]["anchors"].pop(1)
    path.write_text(_yaml(data), encoding="utf-8")
    with pytest.raises(InvalidRubric) as info:
        load_rubric_file(path)
    assert str(path) in info.value.message
    assert info.value.field == "axes[0].anchors"


def test_yaml_syntax_error_is_invalid_rubric() -> None:
    with pytest.raises(InvalidRubric) as info:
        rubric_from_yaml("name: [unclosed\nversion: 1\n", source="x.yaml")
    assert "not valid YAML" in info.value.message
    assert "x.yaml" in info.value.message


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("- a\n- b\n", "list"), ("just text\n", "str")])
def test_yaml_must_hold_one_mapping(text: str, what: str) -> None:
    with pytest.raises(InvalidRubric) as info:
        rubric_from_yaml(text)
    assert what in info.value.message
    assert info.value.field == "rubric"


def test_repeated_yaml_key_is_rejected_not_silently_overwritten() -> None:
    text = _yaml(rubric_dict())
    # A second anchor 3 for the first axis: plain YAML would keep only the last one.
    doubled = text.replace("    3:\n", "    3:\n      zh: 重复\n      en: dup\n    3:\n", 1)
    assert doubled != text
    with pytest.raises(InvalidRubric) as info:
        rubric_from_yaml(doubled)
    assert "duplicate key 3" in info.value.message


def test_repeated_top_level_key_is_rejected() -> None:
    text = _yaml(rubric_dict()) + "version: 2\n"
    with pytest.raises(InvalidRubric) as info:
        rubric_from_yaml(text)
    assert "duplicate key 'version'" in info.value.message


def test_yaml_merge_keys_still_work() -> None:
    text = _yaml(rubric_dict())
    text = text.replace("description:\n  zh: 测试用量表", "description: &desc\n  zh: 测试用量表", 1)
    # The first layer's title reuses the description and overrides one key: not a repeated key.
    text = text.replace(
        "  title:\n    zh: 思维链\n    en: Chain of thought\n", "  title:\n    <<: *desc\n    en: Overridden\n", 1
    )
    assert "<<: *desc" in text
    rubric = rubric_from_yaml(text)
    assert rubric.layers[0].title.en == "Overridden"
    assert rubric.layers[0].title.zh == "测试用量表"


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(RubricNotFound):
        load_rubric_file(tmp_path / "nope.yaml")


def test_non_utf8_file_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes(_yaml(rubric_dict()).encode("gbk"))
    with pytest.raises(InvalidRubric) as info:
        load_rubric_file(path)
    assert info.value.field == "path"


def test_load_rubric_dispatches_on_type(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(_yaml(rubric_dict()), encoding="utf-8")
    assert load_rubric(path) == load_rubric(rubric_dict())


def test_json_style_string_anchor_levels_are_accepted() -> None:
    data = rubric_dict()
    for ax in data["axes"]:
        ax["anchors"] = {str(level): text for level, text in ax["anchors"].items()}
    assert rubric_from_dict(data) == make_rubric()


def test_dump_yaml_round_trips_chinese_titles() -> None:
    rubric = make_rubric()
    text = dump_yaml(rubric)
    # Chinese is written as is, not as \u escapes, so the file stays readable.
    assert "医学推理" in text
    assert "安全性" in text
    assert "\\u" not in text
    back = rubric_from_yaml(text)
    assert back == rubric
    assert back.axis("safety").title.zh == "安全性"
    assert back.content_hash == rubric.content_hash


def test_dump_yaml_writes_integer_anchor_levels() -> None:
    raw = yaml.safe_load(dump_yaml(make_rubric()))
    assert list(raw["axes"][0]["anchors"]) == [1, 2, 3, 4, 5]
    assert list(raw)[:2] == ["name", "version"]
