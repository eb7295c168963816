"""Domain errors of the scoring engine; all subclass the one base in :mod:`rubrics.errors`."""

from __future__ import annotations

from rubrics.errors import InvalidRubric, RubricConflict, RubricJudgeError, RubricNotFound

__all__ = [
    "InvalidRubric",
    "InvalidSample",
    "JudgeNotFound",
    "JudgeRubricMismatch",
    "JudgeUnavailable",
    "LimitExceeded",
    "RubricConflict",
    "RubricJudgeError",
    "Forbidden",
    "RubricNotFound",
    "StoreUnavailable",
    "Unauthorized",
    "VerdictNotFound",
]


class InvalidSample(RubricJudgeError):
    status_code = 422


class JudgeNotFound(RubricJudgeError):
    status_code = 404


class JudgeUnavailable(RubricJudgeError):
    """A judge profile exists but cannot be used (missing API key, unsupported rubric kind...)."""

    status_code = 503


class JudgeRubricMismatch(RubricJudgeError):
    """A judge that cannot score the rubric's kind (the rules judge on an LLM rubric), or no judge that fits."""

    status_code = 422


class VerdictNotFound(RubricJudgeError):
    status_code = 404


class LimitExceeded(RubricJudgeError):
    """A request over a configured limit (samples per request, characters per text)."""

    status_code = 413


class Unauthorized(RubricJudgeError):
    status_code = 401


class Forbidden(RubricJudgeError):
    """A valid key without the scope a route needs (an admin route called with a plain key)."""

    status_code = 403


class StoreUnavailable(RubricJudgeError):
    """The database cannot be reached right now; the client should retry after ``retry_after_s``."""

    status_code = 503
    retry_after_s = 5
