"""Errors of retention and export (domain errors: the CLI prints them, the API would answer 422)."""

from __future__ import annotations

from judge.errors import RubricJudgeError


class InvalidRetentionOption(RubricJudgeError):
    """An age, a format or a date that cannot be read; ``field`` names the option."""

    status_code = 422
