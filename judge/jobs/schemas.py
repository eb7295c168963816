"""What a job is asked to do (kind, rubric, judge, generator, options) and what curation reads per line."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.profiles import RationaleMode
from judge.samples import Message

JobKind = Literal["filter", "curate"]


class JobState(StrEnum):
    ingesting = "ingesting"
    running = "running"
    done = "done"
    cancelled = "cancelled"
    failed = "failed"


ACTIVE_STATES = (JobState.ingesting.value, JobState.running.value)


class ItemState(StrEnum):
    pending = "pending"
    kept = "kept"
    dropped = "dropped"
    failed = "failed"
    invalid = "invalid"


FINAL_STATES = (ItemState.kept, ItemState.dropped, ItemState.failed, ItemState.invalid)


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Lines per chunk: the unit a worker leases, scores and commits in one transaction.
    chunk_size: Annotated[int, Field(ge=1, le=10_000)] = 256
    # true/false: keep or leave out the judge's rationales in the output records; "full" | "brief" | "none": ask
    # the judge for that (none: scores only, the cheapest filter; curation's feedback uses the rationales).
    rationale: bool | RationaleMode = True
    # What an item with an unscored axis gets (see ScoreOptions.on_missing); an undecided item is "failed".
    on_missing: Literal["null", "fail", "ignore"] = "null"
    # Curation: generate + up to rounds - 1 refinements.
    rounds: Annotated[int, Field(ge=1, le=10)] = 3
    # Curation prompts' language; None follows the rubric's.
    language: Literal["zh", "en"] | None = None


class JobSpec(BaseModel):
    """A job request, without its input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: JobKind = "filter"
    rubric: Annotated[str, Field(min_length=1, max_length=200)] = "prmed"
    judge: Annotated[str, Field(min_length=1, max_length=100)]
    # Curation only: the judge-file profile (backend openai) that writes and refines the samples.
    generator: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    options: JobOptions = Field(default_factory=JobOptions)


class PromptIn(BaseModel):
    """A curation input line: the patient conversation so far (``messages`` ending with the patient, or ``prompt``)."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str | None, Field(max_length=512)] = None
    messages: list[Message] | None = None
    prompt: Annotated[str | None, Field(min_length=1)] = None
    reference: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_conversation(self) -> PromptIn:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give either `messages` or `prompt`")
        if self.messages is not None:
            if not self.messages:
                raise ValueError("messages: at least one message")
            if self.messages[-1].role != "user":
                raise ValueError("messages: the last message must be the patient's (role user)")
        return self

    def conversation(self) -> list[Message]:
        if self.messages is not None:
            return list(self.messages)
        assert self.prompt is not None
        return [Message(role="user", content=self.prompt)]
