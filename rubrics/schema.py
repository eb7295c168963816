"""Pydantic schema of a rubric: axes with bilingual anchors, pass policy and reward policy."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rubrics.storable import check_storable

Language = Literal["zh", "en"]
KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
NAME_PATTERN = r"^[a-z][a-z0-9_.-]*$"
LEVELS = (1, 2, 3, 4, 5)

# Bounds that keep one rubric from costing every request that names it (docs/reliability.md): weights finite
# and small enough that no sum overflows, a few dozen axes, texts a person writes, and the whole as JSON.
MAX_WEIGHT = 1_000_000.0
MAX_AXES = 64
MAX_LAYERS = 16
MAX_GATES = 64
MAX_TEXT_CHARS = 8_000
MAX_VERSION = 2**31 - 1
MAX_RUBRIC_BYTES = 1_048_576

Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]
Key = Annotated[str, Field(pattern=KEY_PATTERN, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalizedText(_Strict):
    """The same text in Chinese and English."""

    zh: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    en: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]

    @field_validator("zh", "en")
    @classmethod
    def _storable(cls, value: str) -> str:
        return str(check_storable(value))

    def get(self, language: Language) -> str:
        return self.zh if language == "zh" else self.en


class Layer(_Strict):
    key: Key
    title: LocalizedText
    weight: Weight = 1.0


class Axis(_Strict):
    key: Key
    layer: Annotated[str, Field(max_length=64)]
    weight: Weight = 1.0
    title: LocalizedText
    description: LocalizedText
    anchors: dict[int, LocalizedText]

    @field_validator("anchors")
    @classmethod
    def _five_levels(cls, anchors: dict[int, LocalizedText]) -> dict[int, LocalizedText]:
        if sorted(anchors) != list(LEVELS):
            raise ValueError(f"anchors must define exactly the levels 1..5, got {sorted(anchors)}")
        return dict(sorted(anchors.items()))


class PassPolicy(_Strict):
    """A sample passes only if every axis scores strictly above ``threshold`` (per-axis overrides allowed)."""

    threshold: Annotated[float, Field(ge=0, le=5)] = 4.0
    per_axis: Annotated[dict[str, Annotated[float, Field(ge=0, le=5)]], Field(max_length=MAX_AXES)] = Field(
        default_factory=dict
    )

    def threshold_for(self, axis: str) -> float:
        return self.per_axis.get(axis, self.threshold)


class HardGate(_Strict):
    """If ``axis`` scores at or below ``max_score``, the reward is clamped to ``reward``."""

    axis: Annotated[str, Field(max_length=64)]
    max_score: Annotated[float, Field(ge=1, le=5)]
    reward: Annotated[float, Field(ge=0, le=1)] = 0.0


class LengthPenalty(_Strict):
    """Optional penalty for over-long outputs: ``reward -= per_1k_chars * max(0, chars - free_chars) / 1000``."""

    free_chars: Annotated[int, Field(ge=0, le=10**9)] = 4000
    per_1k_chars: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.05
    max_penalty: Annotated[float, Field(ge=0, le=1)] = 0.5


class IntegrityGate(_Strict):
    """A sample caught by an integrity check fails and has its reward capped at ``reward`` (on [0, 1])."""

    reward: Annotated[float, Field(ge=0, le=1)] = 0.0


class RewardPolicy(_Strict):
    """How axis scores become one scalar reward in [0, 1]."""

    # Weights override the axes' own weights; axes not named keep theirs.
    weights: Annotated[dict[str, Weight], Field(max_length=MAX_AXES)] = Field(default_factory=dict)
    gates: Annotated[list[HardGate], Field(max_length=MAX_GATES)] = Field(default_factory=list)
    # "minmax" maps the weighted mean of 1..5 linearly onto [0, 1]; "none" keeps the 1..5 scale.
    normalise: Literal["minmax", "none"] = "minmax"
    use_expected: bool = True
    length_penalty: LengthPenalty | None = None
    # What an output cut to RJ_MAX_*_CHARS before judging costs (the judge never saw the rest): "penalise"
    # takes at least ``truncation_penalty`` off the reward (the length penalty, on the original length, when
    # larger), "fail" fails the sample at the reward floor, "ignore" charges only the length penalty.
    on_truncated: Literal["penalise", "fail", "ignore"] = "penalise"
    truncation_penalty: Annotated[float, Field(ge=0, le=1)] = 0.25
    # A response clearly not in the patient's language (judge.integrity.language).
    language_gate: IntegrityGate | None = None
    # A CoT padded with the rubric's own axis titles (judge.integrity.padding).
    padding_gate: IntegrityGate | None = None


class JudgingPolicy(_Strict):
    """How the judge is shown a sample (the rubric's part of it; a judge profile says the rest)."""

    # Layers whose axes are judged on the response alone, without the CoT (the patient never sees the CoT):
    # they get judge calls of their own in every mode (group mode: a group call per display order).
    response_only_layers: list[str] = Field(default_factory=list)


class Rubric(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)]
    description: LocalizedText
    language: Language = "zh"
    # Which kind of judge the rubric is written for: an LLM judge, or the deterministic rules backend.
    kind: Literal["llm", "rules"] = "llm"
    layers: Annotated[list[Layer], Field(min_length=1, max_length=MAX_LAYERS)]
    axes: Annotated[list[Axis], Field(min_length=1, max_length=MAX_AXES)]
    pass_policy: PassPolicy = Field(default_factory=PassPolicy)
    reward_policy: RewardPolicy = Field(default_factory=RewardPolicy)
    judging: JudgingPolicy = Field(default_factory=JudgingPolicy)

    @model_validator(mode="after")
    def _consistent(self) -> Rubric:
        layer_keys = [layer.key for layer in self.layers]
        if len(set(layer_keys)) != len(layer_keys):
            raise ValueError(f"layers: layer keys must be unique; repeated: {_repeated(layer_keys)}")
        axis_keys = [axis.key for axis in self.axes]
        if len(set(axis_keys)) != len(axis_keys):
            raise ValueError(f"axes: axis keys must be unique; repeated: {_repeated(axis_keys)}")
        for i, axis in enumerate(self.axes):
            if axis.layer not in layer_keys:
                raise ValueError(
                    f"axes[{i}].layer: axis {axis.key!r} names unknown layer {axis.layer!r}; known: {layer_keys}"
                )
        known = set(axis_keys)
        for where, keys in (
            ("reward_policy.weights", self.reward_policy.weights),
            ("pass_policy.per_axis", self.pass_policy.per_axis),
        ):
            unknown = set(keys) - known
            if unknown:
                raise ValueError(f"{where} names unknown axes {sorted(unknown)}")
        for i, gate in enumerate(self.reward_policy.gates):
            if gate.axis not in known:
                raise ValueError(f"reward_policy.gates[{i}].axis names unknown axis {gate.axis!r}")
        for layer in self.judging.response_only_layers:
            if layer not in layer_keys:
                raise ValueError(f"judging.response_only_layers names unknown layer {layer!r}; known: {layer_keys}")
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def axis_keys(self) -> list[str]:
        return [axis.key for axis in self.axes]

    def axis(self, key: str) -> Axis:
        for axis in self.axes:
            if axis.key == key:
                return axis
        raise KeyError(key)

    def canonical_json(self) -> bytes:
        data = self.model_dump(mode="json")
        # Fields added after rubrics were published are left out while at their defaults, so that an old
        # rubric (prmed@1) keeps its content hash and its stored verdicts keep matching.
        for section, defaults in _ADDED_LATER.items():
            part = data.get(section, {})
            for name, default in defaults.items():
                if part.get(name) == default:
                    part.pop(name, None)
            if section == "judging" and not part:
                data.pop(section, None)
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    # A cached_property, not a private attribute: pydantic's == ignores it, so equality does not
    # depend on whether the hash was read yet.
    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON: two rubrics with the same content share a hash."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        # The copy may have other content; its hash is computed afresh.
        copy.__dict__.pop("content_hash", None)
        return copy


# section -> {field: default} of fields added after rubrics were published (issue 9).
_ADDED_LATER: dict[str, dict[str, Any]] = {
    "reward_policy": {
        "on_truncated": "penalise",
        "truncation_penalty": 0.25,
        "language_gate": None,
        "padding_gate": None,
    },
    "judging": {"response_only_layers": []},
}


def _repeated(keys: list[str]) -> list[str]:
    return sorted({k for k in keys if keys.count(k) > 1})
