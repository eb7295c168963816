"""Errors of the agreement statistics; the API renders them through the project's one error model."""

from __future__ import annotations

from rubrics.errors import RubricJudgeError


class RaterNotFound(RubricJudgeError):
    """A rater name or pattern matched no rater with ratings under the rubric."""

    status_code = 404


class NotEnoughRatings(RubricJudgeError):
    """Too few raters or overlapping samples to compute any agreement."""

    status_code = 422


class InvalidRatingsFile(RubricJudgeError):
    """A ratings file that cannot be read at all (unknown format, not UTF-8, no header)."""

    status_code = 422


class NoValidRatings(RubricJudgeError):
    """An import in which no row is valid; ``field`` names the first bad one."""

    status_code = 422
