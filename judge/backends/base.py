"""The model boundary: what every judge backend provides."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.verdicts import JudgeOutcome
from rubrics.schema import Rubric


@runtime_checkable
class JudgeBackend(Protocol):
    """Scores one sample on every axis of a rubric.

    ``score`` never raises for a judge-side failure: it returns an outcome whose axes carry the
    failure status (``judge_error``, ``parse_error``, ``timeout``, ``truncated``) and no score.
    It raises only for caller errors (e.g. a rubric kind this backend cannot score).
    """

    profile: JudgeProfile

    async def score(self, sample: Sample, rubric: Rubric) -> JudgeOutcome: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class GroupJudgeBackend(JudgeBackend, Protocol):
    """A backend that can judge all responses to one prompt in one call (``mode: group``)."""

    async def score_group(self, samples: list[Sample], rubric: Rubric) -> list[JudgeOutcome]: ...
