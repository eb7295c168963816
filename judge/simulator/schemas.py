"""Cases (who the patient is and how they talk), perturbation specs, and the simulate request."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from judge.samples import Message

Intensity = Literal["formal", "mild", "moderate", "heavy"]
INTENSITIES: tuple[Intensity, ...] = ("formal", "mild", "moderate", "heavy")
# The perturbations of the PrMed card: colloquial, vague, dialectal, emotionally charged, typos and homophones,
# digressions.
PerturbationType = Literal["colloquial", "vague", "dialectal", "emotional", "typo_homophone", "digression"]
PERTURBATION_TYPES: tuple[PerturbationType, ...] = (
    "colloquial",
    "vague",
    "dialectal",
    "emotional",
    "typo_homophone",
    "digression",
)
Language = Literal["zh", "en"]
# Why a simulated dialogue stops (or "continue" when it does not).
DoneReason = Literal["continue", "need_met", "patient_ended", "max_turns"]

ShortText = Annotated[str, Field(min_length=1, max_length=2000)]


class Persona(BaseModel):
    """Who is speaking: the patient, or a relative speaking for them."""

    model_config = ConfigDict(extra="forbid")

    age: Annotated[int, Field(ge=0, le=130)]
    sex: Literal["male", "female", "other"]
    speaker: Literal["patient", "relative"] = "patient"
    # For a relative: who they are to the patient ("女儿", "daughter").
    relation: Annotated[str | None, Field(max_length=100)] = None


class HiddenFact(BaseModel):
    """A fact the patient knows but tells only when the doctor asks about ``topic``."""

    model_config = ConfigDict(extra="forbid")

    topic: ShortText
    fact: ShortText


class PerturbationSpec(BaseModel):
    """How the patient's language departs from a formal clinical description."""

    model_config = ConfigDict(extra="forbid")

    types: Annotated[list[PerturbationType], Field(max_length=len(PERTURBATION_TYPES))] = Field(default_factory=list)
    intensity: Intensity = "formal"

    @field_validator("types")
    @classmethod
    def _distinct(cls, types: list[PerturbationType]) -> list[PerturbationType]:
        if len(set(types)) != len(types):
            raise ValueError("perturbation types must be distinct")
        return types


class PatientCase(BaseModel):
    """One simulated patient. ``opening`` is their first message (written by the simulator when absent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str | None, Field(max_length=512)] = None
    persona: Persona
    chief_complaint: ShortText
    hidden_facts: Annotated[list[HiddenFact], Field(max_length=50)] = Field(default_factory=list)
    emotional_state: Annotated[str, Field(min_length=1, max_length=500)] = "平静"
    language: Language = "zh"
    perturbation: PerturbationSpec = Field(default_factory=PerturbationSpec)
    opening: Annotated[str | None, Field(min_length=1, max_length=20_000)] = None
    # A reference answer for the judge, when the case has one.
    reference: Annotated[str | None, Field(max_length=20_000)] = None
    # Policy turns after which the visit ends (``done``, reason ``max_turns``); requests may override it.
    max_turns: Annotated[int, Field(ge=1, le=50)] = 5

    @property
    def hash(self) -> str:
        """Everything the simulator is told about the patient (the id and turn cap change nothing it says)."""
        body = self.model_dump(mode="json", exclude={"id", "max_turns", "reference"})
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_dialogue(messages: list[Message]) -> list[Message]:
    """A dialogue handed to the simulator: it must end with the doctor's (assistant's) turn."""
    if not messages:
        raise ValueError("the dialogue is empty; it must end with an assistant turn")
    if messages[-1].role != "assistant":
        raise ValueError(f"the dialogue must end with an assistant turn (the last one is {messages[-1].role!r})")
    return messages


class SimulateRequest(BaseModel):
    """``POST /v1/simulate``: the patient's next turn after the doctor's last one."""

    model_config = ConfigDict(extra="forbid")

    simulator: Annotated[str, Field(min_length=1, max_length=100)]
    case: PatientCase
    messages: Annotated[list[Message], Field(max_length=200)]
    seed: int | None = None
    # Overrides the case's turn cap.
    max_turns: Annotated[int | None, Field(ge=1, le=50)] = None
    cache: bool = True

    @field_validator("messages")
    @classmethod
    def _ends_with_assistant(cls, messages: list[Message]) -> list[Message]:
        return check_dialogue(messages)


class PerturbRequest(BaseModel):
    """``POST /v1/perturb``: a formal patient message rewritten at each intensity, clinical facts kept."""

    model_config = ConfigDict(extra="forbid")

    simulator: Annotated[str, Field(min_length=1, max_length=100)]
    text: Annotated[str, Field(min_length=1, max_length=20_000)]
    levels: Annotated[list[Intensity], Field(min_length=1, max_length=4)] = Field(
        default_factory=lambda: list(INTENSITIES)
    )
    # The types to draw on; empty means all of them.
    types: Annotated[list[PerturbationType], Field(max_length=len(PERTURBATION_TYPES))] = Field(default_factory=list)
    language: Language = "zh"
    seed: int | None = None
    cache: bool = True
