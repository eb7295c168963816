"""The registry: built-in and user rubrics, resolution by name[@version], conflicts and idempotence."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from rubrics.errors import InvalidRubric, RubricConflict, RubricJudgeError, RubricNotFound
from rubrics.registry import RubricRegistry, builtin_rubrics, parse_ref
from tests.rubrics.builders import make_rubric, rubric_dict


@pytest.fixture
def registry() -> RubricRegistry:
    reg = RubricRegistry(include_builtin=False)
    for version in (1, 3, 2):
        reg.register(make_rubric(version=version))
    return reg


def _write(path: Path, **overrides: object) -> None:
    path.write_text(yaml.safe_dump(rubric_dict(**overrides), allow_unicode=True), encoding="utf-8")


def test_builtin_prmed_is_registered() -> None:
    reg = RubricRegistry()
    prmed = reg.resolve("prmed@1")
    assert prmed.ref == "prmed@1"
    assert reg.is_builtin("prmed@1")
    assert "prmed@1" in reg


def test_every_builtin_yaml_file_is_loaded() -> None:
    folder = resources.files("rubrics").joinpath("builtin")
    files = [e for e in folder.iterdir() if e.name.endswith(".yaml")]
    assert len(files) >= 1
    assert len(builtin_rubrics()) == len(files)
    refs = {r.ref for r in RubricRegistry().list()}
    assert {r.ref for r in builtin_rubrics()} <= refs


def test_resolve_name_gives_latest_version(registry: RubricRegistry) -> None:
    assert registry.resolve("tiny").version == 3
    assert registry.versions("tiny") == [1, 2, 3]


def test_resolve_pinned_version(registry: RubricRegistry) -> None:
    assert registry.resolve("tiny@2").version == 2
    assert registry.get("tiny", 1).ref == "tiny@1"


def test_unknown_name_is_not_found(registry: RubricRegistry) -> None:
    with pytest.raises(RubricNotFound) as info:
        registry.resolve("huge")
    assert info.value.field == "rubric"
    assert info.value.status_code == 404
    assert "tiny" in info.value.message  # lists what is known


def test_unknown_version_is_not_found(registry: RubricRegistry) -> None:
    with pytest.raises(RubricNotFound) as info:
        registry.resolve("tiny@9")
    assert info.value.field == "rubric"
    assert "tiny@3" in info.value.message


@pytest.mark.parametrize(
    "ref", ["", "tiny@", "@1", "tiny@0", "tiny@v1", "tiny@1@2", "Tiny", "tiny@-1", " tiny", "ti ny"]
)
def test_malformed_ref_is_invalid(registry: RubricRegistry, ref: str) -> None:
    with pytest.raises(InvalidRubric) as info:
        registry.resolve(ref)
    assert info.value.field == "rubric"


def test_parse_ref() -> None:
    assert parse_ref("prmed") == ("prmed", None)
    assert parse_ref("prmed-format@12") == ("prmed-format", 12)


def test_conflicting_content_is_a_409(registry: RubricRegistry) -> None:
    changed = make_rubric(version=2, description={"zh": "改过的", "en": "changed"})
    with pytest.raises(RubricConflict) as info:
        registry.register(changed)
    assert info.value.status_code == 409
    assert "tiny@2" in info.value.message
    # the registered content is untouched
    assert registry.resolve("tiny@2").description.en == "A rubric for tests"
    assert registry.get_by_hash(changed.content_hash) is None


def test_re_register_same_content_is_idempotent(registry: RubricRegistry) -> None:
    before = registry.resolve("tiny@2")
    count = len(registry)
    again = registry.register(make_rubric(version=2))
    assert again is before
    assert len(registry) == count


def test_get_by_hash(registry: RubricRegistry) -> None:
    rubric = registry.resolve("tiny@3")
    assert registry.get_by_hash(rubric.content_hash) is rubric
    assert registry.get_by_hash("0" * 64) is None


def test_list_is_sorted_by_name_then_version(registry: RubricRegistry) -> None:
    registry.register(make_rubric(name="alpha"))
    assert [r.ref for r in registry.list()] == ["alpha@1", "tiny@1", "tiny@2", "tiny@3"]


def test_user_dir_is_loaded_with_builtins(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", name="mine", version=1)
    _write(tmp_path / "b.yml", name="mine", version=2)
    (tmp_path / "notes.txt").write_text("not a rubric", encoding="utf-8")
    reg = RubricRegistry(user_dir=tmp_path)
    assert reg.resolve("mine").version == 2
    assert not reg.is_builtin("mine@1")
    assert reg.resolve("prmed@1").name == "prmed"


def test_user_dir_accepts_str(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", name="mine")
    assert RubricRegistry(user_dir=str(tmp_path), include_builtin=False).resolve("mine@1").ref == "mine@1"


def test_invalid_user_file_names_the_file(tmp_path: Path) -> None:
    data = rubric_dict(name="mine")
    data["axes"][0]["anchors"].pop(4)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(InvalidRubric) as info:
        RubricRegistry(user_dir=tmp_path, include_builtin=False)
    assert "bad.yaml" in info.value.message
    assert info.value.field == "axes[0].anchors"


def test_user_file_cannot_redefine_a_builtin(tmp_path: Path) -> None:
    prmed = RubricRegistry().resolve("prmed@1")
    altered = prmed.model_dump(mode="json")
    altered["description"]["en"] = "my own prmed"
    (tmp_path / "prmed.yaml").write_text(yaml.safe_dump(altered, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RubricConflict) as info:
        RubricRegistry(user_dir=tmp_path)
    assert "prmed.yaml" in info.value.message
    assert "prmed@1" in info.value.message


def test_user_file_repeating_a_builtin_verbatim_is_fine(tmp_path: Path) -> None:
    prmed = RubricRegistry().resolve("prmed@1")
    (tmp_path / "copy.yaml").write_text(yaml.safe_dump(prmed.model_dump(mode="json"), allow_unicode=True), "utf-8")
    reg = RubricRegistry(user_dir=tmp_path)
    assert reg.resolve("prmed@1").content_hash == prmed.content_hash


def test_missing_user_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RubricJudgeError) as info:
        RubricRegistry(user_dir=tmp_path / "absent")
    assert info.value.field == "rubrics_dir"


def test_registries_do_not_share_runtime_registrations() -> None:
    first, second = RubricRegistry(), RubricRegistry()
    first.register(make_rubric(name="only-here"))
    assert "only-here@1" in first
    assert "only-here@1" not in second
