"""Judge profiles: named backend configurations, loaded from the YAML file in settings."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from judge.errors import InvalidRubric, JudgeNotFound, RubricJudgeError

# Bumped whenever prompt templates or output parsing change, so old cache entries stop matching.
JUDGE_PROTOCOL_VERSION = "1"

# Fields that change how to reach a judge, not what it says: left out of the profile hash.
CONNECTION_FIELDS = frozenset(
    {"name", "aliases", "base_url", "api_key_env", "concurrency", "timeout_s", "max_retries", "retry_budget_s"}
)


class JudgeProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)]
    backend: Literal["openai", "rules", "reward_model"] = "openai"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    structured_output: Literal["json_schema", "json_object", "none"] = "json_schema"
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=1, le=20)] = 20
    mode: Literal["joint", "isolated", "group"] = "joint"
    # Prompt language; None follows the rubric's language.
    language: Literal["zh", "en"] | None = None
    concurrency: Annotated[int, Field(ge=1, le=4096)] = 16
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 5
    # Cap on the total time spent retrying one call, on top of the attempt cap.
    retry_budget_s: Annotated[float, Field(gt=0)] = 120.0
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_tokens: Annotated[int, Field(ge=16)] = 2048
    # One re-ask with the parse error when the answer cannot be parsed.
    repair: bool = True
    # Local reward-model profiles: the registered model name (or a path) to load.
    reward_model: str | None = None
    # Other names a client may use for this profile (e.g. the model path or hub id verl sends to /classify).
    aliases: tuple[str, ...] = ()
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @cached_property
    def identity(self) -> str:
        """Name and every field, connection fields included: one backend (one client, one pool) per identity."""
        return f"{self.name}:{hashlib.sha256(self.model_dump_json().encode()).hexdigest()}"

    @cached_property
    def hash(self) -> str:
        """Hash of everything that changes the judge's answer; secrets and connection fields excluded."""
        body = {k: v for k, v in self.model_dump(mode="json").items() if k not in CONNECTION_FIELDS}
        body["protocol"] = JUDGE_PROTOCOL_VERSION
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class JudgesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judges: list[JudgeProfile]


# Always available: the deterministic, offline structure judge.
BUILTIN_PROFILES = (JudgeProfile(name="rules", backend="rules", concurrency=64),)


class ProfileRegistry:
    """Profiles by name: the built-in ones plus those of the judges file."""

    def __init__(self, profiles: list[JudgeProfile] | None = None) -> None:
        self._profiles: dict[str, JudgeProfile] = {p.name: p for p in BUILTIN_PROFILES}
        for profile in profiles or []:
            self._profiles[profile.name] = profile

    @classmethod
    def from_file(cls, path: Path | None) -> ProfileRegistry:
        if path is None:
            return cls()
        return cls(load_profiles(path))

    def get(self, name: str) -> JudgeProfile:
        try:
            return self._profiles[name]
        except KeyError:
            raise JudgeNotFound(
                f"unknown judge profile {name!r}; known: {', '.join(sorted(self._profiles))}", field="judge"
            ) from None

    def add(self, profile: JudgeProfile) -> None:
        self._profiles[profile.name] = profile

    def all(self) -> list[JudgeProfile]:
        return list(self._profiles.values())


def load_profiles(path: Path) -> list[JudgeProfile]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RubricJudgeError(f"cannot read judges file {path}: {exc}", field="judges_file") from exc
    try:
        return JudgesFile.model_validate(raw).judges
    except ValidationError as exc:
        raise InvalidRubric(f"invalid judges file {path}: {exc}", field="judges_file") from exc
