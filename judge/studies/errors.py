"""Errors of rating studies, rendered through the project's one error model."""

from __future__ import annotations

from rubrics.errors import RubricJudgeError


class StudyNotFound(RubricJudgeError):
    status_code = 404


class StudyExists(RubricJudgeError):
    status_code = 409


class StudyClosed(RubricJudgeError):
    """The study is closed: its ratings can be read but no longer changed."""

    status_code = 409


class InvalidStudy(RubricJudgeError):
    """A study that cannot be built as asked (too few samples for a connected design, unknown raters...)."""

    status_code = 422


class ItemNotFound(RubricJudgeError):
    """No assignment at that position for this rater (other raters' items are never found either)."""

    status_code = 404


class ItemConflict(RubricJudgeError):
    """An action that does not fit the item's state (skipping an item already rated, revealing before rating)."""

    status_code = 409


class InvalidRaterToken(RubricJudgeError):
    status_code = 401


class InvalidItem(RubricJudgeError):
    """Scores or comments that do not fit the study's rubric (unknown or missing axes)."""

    status_code = 422
