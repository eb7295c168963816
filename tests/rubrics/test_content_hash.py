"""The content hash identifies a rubric's content: stable, order-insensitive, sensitive to any edit."""

from __future__ import annotations

from typing import Any

import pytest

from rubrics.schema import Rubric
from tests.rubrics.builders import make_rubric, rubric_dict

# Pinned so that an accidental change to the canonical form (which would orphan every cached and
# stored verdict) fails loudly; update it only together with a deliberate, documented change.
TINY_HASH = "dc5c8de000bf006e36dbffb61c22a29e3ad28edef33d89de6fb64ae52c8607ce"


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


def test_same_content_same_hash() -> None:
    assert make_rubric().content_hash == make_rubric().content_hash


def test_hash_is_sha256_hex() -> None:
    digest = make_rubric().content_hash
    assert len(digest) == 64
    int(digest, 16)


def test_hash_is_pinned() -> None:
    assert make_rubric().content_hash == TINY_HASH


def test_mapping_key_order_is_irrelevant() -> None:
    data = rubric_dict()
    shuffled = _reordered(data)
    assert list(shuffled) != list(data)
    assert Rubric.model_validate(shuffled).content_hash == Rubric.model_validate(data).content_hash


def test_equivalent_spellings_hash_equal() -> None:
    data = rubric_dict(reward_policy={"weights": {"safety": 2}})
    for ax in data["axes"]:
        ax["anchors"] = {str(k): v for k, v in ax["anchors"].items()}
    other = rubric_dict(reward_policy={"weights": {"safety": 2.0}})
    assert Rubric.model_validate(data).content_hash == Rubric.model_validate(other).content_hash


@pytest.mark.parametrize(("axis_index", "level", "lang"), [(0, 1, "zh"), (1, 3, "en"), (2, 5, "zh")])
def test_any_anchor_edit_changes_the_hash(axis_index: int, level: int, lang: str) -> None:
    data = rubric_dict()
    data["axes"][axis_index]["anchors"][level][lang] += "。"
    assert Rubric.model_validate(data).content_hash != make_rubric().content_hash


@pytest.mark.parametrize(
    "overrides",
    [
        {"version": 2},
        {"reward_policy": {"weights": {"safety": 2.0}}},
        {"pass_policy": {"threshold": 3}},
        {"reward_policy": {"use_expected": False}},
    ],
)
def test_policy_and_identity_edits_change_the_hash(overrides: dict[str, Any]) -> None:
    assert make_rubric(**overrides).content_hash != make_rubric().content_hash


def test_axis_order_is_content() -> None:
    data = rubric_dict()
    data["axes"] = list(reversed(data["axes"]))
    assert Rubric.model_validate(data).content_hash != make_rubric().content_hash


def test_equality_does_not_depend_on_reading_the_hash() -> None:
    first, second = make_rubric(), make_rubric()
    _ = first.content_hash
    assert first == second


def test_model_copy_with_update_gets_a_fresh_hash() -> None:
    rubric = make_rubric()
    original = rubric.content_hash
    bumped = rubric.model_copy(update={"version": 2})
    assert bumped.content_hash != original
    assert bumped.content_hash == make_rubric(version=2).content_hash
    assert rubric.model_copy().content_hash == original
