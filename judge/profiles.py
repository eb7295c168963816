"""Judge profiles: named backend configurations, loaded from the YAML file in settings."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from judge.errors import InvalidRubric, JudgeNotFound, RubricJudgeError
from judge.pricing.prices import TokenPrices
from rubrics.loader import YamlLimitExceeded, load_yaml_bounded
from rubrics.schema import MAX_RUBRIC_BYTES

# Bumped whenever prompt templates or output parsing change, so old cache entries stop matching.
# 2: cache-friendly layout (static system, rubric and output format first; the nonce and judged texts after).
# 3: the parser never takes a quoted verdict, prefers a complete one, refuses disagreeing ones (issue 9).
JUDGE_PROTOCOL_VERSION = "3"

# Fields that change how to reach a judge, not what it says: left out of the profile hash.
CONNECTION_FIELDS = frozenset(
    {
        "name",
        "aliases",
        "base_url",
        "api_key_env",
        "concurrency",
        "timeout_s",
        "max_retries",
        "retry_budget_s",
        "hedge_after_ms",
        "hedge_percentile",
        "prices",
    }
)

# How much the judge writes before each score: a short rationale (full), one terse clause (brief), or
# nothing (none: the output schema holds scores only, the cheapest answer).
RationaleMode = Literal["full", "brief", "none"]


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
    # joint: one call for every axis; layered: one call per rubric layer; isolated: one call per axis;
    # group: one call for all responses to one prompt.
    mode: Literal["joint", "layered", "isolated", "group"] = "joint"
    rationale: RationaleMode = "full"
    # Group mode: how many distinct, seeded display orders each group is judged in; every sample's scores are
    # averaged over them, so a position bias of the judge averages out instead of sticking to a response.
    permutations: Annotated[int, Field(ge=1, le=8)] = 2
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
    # Hedged calls (opt-in): when a call has had no answer this long, a second identical one is sent and the
    # first answer wins. A fixed threshold, or a percentile of this judge's recent call latencies (with
    # hedge_after_ms as its floor); see judge.backends.openai.hedge.
    hedge_after_ms: Annotated[float | None, Field(gt=0)] = None
    hedge_percentile: Annotated[float | None, Field(ge=50, lt=100)] = None
    # What the provider bills per million tokens (prompt, cached, completion): usage then carries a cost, and
    # rj_judge_cost_total counts it. None: no cost is reported (none is guessed).
    prices: TokenPrices | None = None

    @field_validator("extra_body")
    @classmethod
    def _extra_body_keeps_messages(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The prompt is the service's (fences, nonce, rubric): a profile adds sampling options, never messages.
        if "messages" in value:
            raise ValueError("extra_body cannot set `messages`: the judge's prompt is built by the service")
        return value

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


class ChatProfile(BaseModel):
    """An OpenAI-compatible chat model that is not a judge: a patient simulator or a policy being evaluated.

    Listed in the judges file under ``simulators:`` or ``policies:``, with their own sampling and concurrency.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)]
    model: Annotated[str, Field(min_length=1)]
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    max_tokens: Annotated[int, Field(ge=16)] = 1024
    # Ask for a JSON object (simulators answer JSON); "none" for servers without ``response_format``.
    structured_output: Literal["json_object", "none"] = "json_object"
    concurrency: Annotated[int, Field(ge=1, le=4096)] = 16
    timeout_s: Annotated[float, Field(gt=0)] = 120.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 3
    retry_budget_s: Annotated[float, Field(gt=0)] = 120.0
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @cached_property
    def hash(self) -> str:
        """Hash of everything that changes what the model says; connection fields and secrets excluded."""
        body = {k: v for k, v in self.model_dump(mode="json").items() if k not in CONNECTION_FIELDS}
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


_VARIANTS: dict[tuple[str, str], JudgeProfile] = {}


def with_rationale(profile: JudgeProfile, rationale: RationaleMode | None) -> JudgeProfile:
    """``profile`` asking for another rationale mode (a request's override); its hash differs, so do its verdicts.

    Built once per profile and mode: hashing a profile costs a JSON dump and a sha256.
    """
    if rationale is None or rationale == profile.rationale or profile.backend != "openai":
        return profile
    key = (profile.identity, rationale)
    variant = _VARIANTS.get(key)
    if variant is None:
        if len(_VARIANTS) >= 1024:
            _VARIANTS.clear()
        variant = _VARIANTS[key] = JudgeProfile.model_validate({**profile.model_dump(), "rationale": rationale})
    return variant


class JudgesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judges: list[JudgeProfile]
    # Patient simulators and policies (judge.simulator); a judges file without them is as before.
    simulators: list[ChatProfile] = Field(default_factory=list)
    policies: list[ChatProfile] = Field(default_factory=list)


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


# A judges file holds a few dozen profiles: the rubric YAML limits (1 MiB, 200,000 nodes once aliases are
# expanded) are ample, and keep a huge file or an alias bomb from hanging start-up or eating memory.
MAX_JUDGES_FILE_BYTES = MAX_RUBRIC_BYTES


def read_judges_yaml(path: Path) -> Any:
    """The judges file parsed with the rubric loader's limits; every failure is one line naming the file."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_JUDGES_FILE_BYTES + 1)  # never more than the limit in memory
        if len(data) > MAX_JUDGES_FILE_BYTES:
            raise YamlLimitExceeded(f"over {MAX_JUDGES_FILE_BYTES} bytes; the file may have {MAX_JUDGES_FILE_BYTES}")
        return load_yaml_bounded(data.decode("utf-8"), max_bytes=MAX_JUDGES_FILE_BYTES)
    except YamlLimitExceeded as exc:
        raise InvalidRubric(f"judges file {path} is over a limit: {exc}", field="judges_file") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        # YAML errors span several lines (marks, carets); the CLI prints one line.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RubricJudgeError(f"cannot read judges file {path}: {reason}", field="judges_file") from exc


def load_profiles(path: Path) -> list[JudgeProfile]:
    raw = read_judges_yaml(path)
    try:
        return JudgesFile.model_validate(raw).judges
    except ValidationError as exc:
        raise InvalidRubric(f"invalid judges file {path}: {exc}", field="judges_file") from exc
