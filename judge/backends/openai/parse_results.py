"""What parsing a judge's answer yields: per-axis scores or errors, for one sample or for a group."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NO_OBJECT = "no JSON object with the expected shape in the answer"
NO_GROUP_OBJECT = 'no JSON object with the expected shape ({"responses": {label: {axis: …}}}) in the answer'
DISAGREE = "the answer holds complete verdicts that disagree; give exactly one"


@dataclass(frozen=True)
class AxisParse:
    """One axis of a parsed answer: a score, or the reason there is none."""

    score: int | None = None
    rationale: str | None = None
    error: str | None = None
    # Offset, in the parsed text, of the score's digit.
    score_offset: int | None = None

    @property
    def ok(self) -> bool:
        return self.score is not None


@dataclass(frozen=True)
class ParseResult:
    axes: dict[str, AxisParse]
    # Answer-level problem (no object of the expected shape); per-axis problems are in ``axes``.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return all(axis.ok for axis in self.axes.values())

    @property
    def failed(self) -> list[str]:
        return [key for key, axis in self.axes.items() if not axis.ok]

    def error_summary(self) -> str:
        if self.error is not None:
            return self.error
        return "; ".join(f"{key}: {axis.error}" for key, axis in self.axes.items() if axis.error)


@dataclass(frozen=True)
class GroupParseResult:
    """A group answer: one :class:`ParseResult` per candidate label."""

    candidates: dict[str, ParseResult]
    # Answer-level problem (no object of the expected shape); per-candidate problems are in ``candidates``.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.candidates.values())

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(label, axis) pairs without a score."""
        return [(label, key) for label, result in self.candidates.items() for key in result.failed]

    def error_summary(self) -> str:
        if self.error is not None:
            return self.error
        return "; ".join(
            f"{label}.{key}: {axis.error}"
            for label, result in self.candidates.items()
            for key, axis in result.axes.items()
            if axis.error
        )


def all_failed(axis_keys: Iterable[str], error: str) -> ParseResult:
    """A result whose every axis failed for one answer-level ``error``."""
    return ParseResult(axes={key: AxisParse(error=error) for key in axis_keys}, error=error)


def scores_by_axis(result: ParseResult) -> dict[str, int | None]:
    """The score of each axis: what two complete verdicts must share to agree."""
    return {key: axis.score for key, axis in result.axes.items()}


def group_failed(labels: Iterable[str], axis_keys: Iterable[str], error: str) -> GroupParseResult:
    """A group result whose every candidate failed for one answer-level ``error``."""
    return GroupParseResult(candidates=dict.fromkeys(labels, all_failed(axis_keys, error)), error=error)
