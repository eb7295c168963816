"""Errors of the reward model, on the project's one error base."""

from __future__ import annotations

from rubrics.errors import RubricJudgeError


class RewardModelError(RubricJudgeError):
    """Base of reward-model errors."""

    status_code = 500


class InvalidArtifact(RewardModelError):
    """A saved model directory that is missing files or whose metadata does not fit."""

    status_code = 422


class IncompatibleModel(RewardModelError):
    """A model that cannot replace another (other axes or tokenizer) or cannot score a rubric."""

    status_code = 409


class EngineClosed(RewardModelError):
    """The inference engine was closed before the request could be scored."""

    status_code = 503


class InvalidTrainingData(RewardModelError):
    """Training or evaluation data that cannot be used (no labels, unknown axes, bad levels)."""

    status_code = 422
