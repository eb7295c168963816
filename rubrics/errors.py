"""The project's one error model.

It lives in the lowest layer so that every package (rubrics, judge, reward_model, api) can raise
subclasses of the same base; the API renders any of them as ``{"error": {"type", "message", "field"}}``.
"""

from __future__ import annotations


class RubricJudgeError(Exception):
    """Base of every domain error. ``status_code`` is the HTTP status the API answers with."""

    status_code: int = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def type(self) -> str:
        return type(self).__name__


class InvalidRubric(RubricJudgeError):
    status_code = 422


class RubricNotFound(RubricJudgeError):
    status_code = 404


class RubricConflict(RubricJudgeError):
    """A ``name@version`` that is already registered with other content."""

    status_code = 409
