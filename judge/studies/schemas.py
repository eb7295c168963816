"""Request and response shapes of rating studies (shared by the API, the page and the CLI)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from judge.samples import SampleIn
from rubrics.schema import LEVELS

ItemState = Literal["pending", "done", "skipped"]
StudyState = Literal["open", "closed"]

# A rater name becomes the rater ``human:<name>``: nothing that would read as a kind, a glob or a list.
_NAME_FORBIDDEN = re.compile(r"[*?\[\],:/\s\x00-\x1f\x7f]")
MAX_COMMENT_CHARS = 4000
MAX_REASON_CHARS = 1000


def _rater_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a rater name cannot be empty")
    if _NAME_FORBIDDEN.search(value):
        raise ValueError(f"rater name {value!r} has a character out of place (space, comma, colon, slash, * ? [ ])")
    return value


RaterName = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_rater_name)]
Score = Annotated[int, Field(ge=min(LEVELS), le=max(LEVELS))]
Elapsed = Annotated[float, Field(ge=0, le=7 * 24 * 3600)]


def human_rater(name: str) -> str:
    """The rater key of a study's rater in the ratings table."""
    return f"human:{name}"


class StudySpec(BaseModel):
    """A study as the CLI gives it (samples come from a file)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f/]+$")]
    rubric: Annotated[str, Field(min_length=1, max_length=200)] = "prmed"
    raters: Annotated[list[RaterName], Field(min_length=2, max_length=200)]
    per_sample: Annotated[int, Field(ge=2, le=200)] = 2
    # Reveal the judges' scores on an item once the rater has submitted it (blind otherwise).
    calibration: bool = False
    seed: Annotated[int, Field(ge=0)] = 0


class StudyCreate(StudySpec):
    """``POST /v1/studies``: the study and its samples."""

    samples: Annotated[list[SampleIn], Field(min_length=1)]


class RaterLink(BaseModel):
    name: str
    rater: str
    assigned: int
    # Shown once, at creation or when a link is renewed: only its hash is stored.
    token: str
    link: str


class StudyCreated(BaseModel):
    id: str
    name: str
    rubric: str
    rubric_hash: str
    per_sample: int
    calibration: bool
    samples: int
    duplicates: int  # input samples with the content of an earlier one (each sample is assigned once)
    min_shared: int  # the fewest samples any two raters share (>= 1: the design is connected)
    max_shared: int
    raters: list[RaterLink]


class RaterProgress(BaseModel):
    name: str
    rater: str
    assigned: int
    done: int
    skipped: int
    pending: int
    seconds_median: float | None
    last_active: datetime | None


class StudyStatus(BaseModel):
    id: str
    name: str
    rubric: str
    rubric_hash: str
    state: StudyState
    per_sample: int
    calibration: bool
    samples: int
    assigned: int
    done: int
    skipped: int
    created_at: datetime
    closed_at: datetime | None
    raters: list[RaterProgress]


class ItemDraft(BaseModel):
    """What the page autosaves: partial scores and comments, and the seconds spent on the item so far."""

    model_config = ConfigDict(extra="forbid")

    scores: dict[str, Score] = Field(default_factory=dict)
    comments: dict[str, Annotated[str, Field(max_length=MAX_COMMENT_CHARS)]] = Field(default_factory=dict)
    # Total seconds on this item as the page counts them (monotone: a retried request changes nothing).
    elapsed: Elapsed = 0.0


class ItemSubmit(ItemDraft):
    """A rating of every axis; resubmitting replaces it (until the study closes)."""


class ItemSkip(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_CHARS)]
    elapsed: Elapsed = 0.0


class Progress(BaseModel):
    total: int
    done: int
    skipped: int

    @property
    def pending(self) -> int:
        return self.total - self.done - self.skipped


class JudgeScores(BaseModel):
    """A judge's scores on the sample (calibration mode, after the rater has submitted)."""

    judge: str
    scores: dict[str, int]


class ItemOut(BaseModel):
    """One of the rater's own items, as the page and its script read it."""

    position: int
    state: ItemState
    sample_id: str | None
    scores: dict[str, int]
    comments: dict[str, str]
    draft: ItemDraft | None  # unsubmitted changes, autosaved; None when there are none
    skip_reason: str | None
    seconds_spent: float
    submitted_at: datetime | None


class ActionResult(BaseModel):
    item: ItemOut
    progress: Progress
    next_position: int | None  # the next item still to rate, if any
    reveal: list[JudgeScores] | None = None  # calibration mode only


class ItemRecord(BaseModel):
    """One assignment as exported: who rated what, how, when and how long (``study export``)."""

    study: str
    rater: str
    position: int
    sample_id: str | None
    sample_hash: str
    state: ItemState
    scores: dict[str, int]
    comments: dict[str, str]
    skip_reason: str | None
    seconds_spent: float
    opened_at: datetime | None
    first_submitted_at: datetime | None
    submitted_at: datetime | None
