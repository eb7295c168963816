"""Errors of the simulator package, in the one error model (:class:`rubrics.errors.RubricJudgeError`)."""

from __future__ import annotations

from rubrics.errors import RubricJudgeError


class ChatProfileNotFound(RubricJudgeError):
    """No simulator (or policy) profile of that name in the judges file."""

    status_code = 404


class SimulatorFailed(RubricJudgeError):
    """The simulator (or policy) model failed after its retries, or answered with something unusable."""

    status_code = 502
