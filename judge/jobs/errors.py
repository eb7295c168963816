"""Errors of bulk jobs, on the one error base (status code and field for the API's error shape)."""

from __future__ import annotations

from rubrics.errors import RubricJudgeError


class JobNotFound(RubricJudgeError):
    status_code = 404


class InvalidJob(RubricJudgeError):
    """A job request that cannot run as asked (e.g. a curate job without a generator)."""

    status_code = 422


class JobSourceRejected(RubricJudgeError):
    """A server-side input path that is not allowed, missing or unreadable."""

    status_code = 400


class UnsupportedMediaType(RubricJudgeError):
    status_code = 415


class JobQueueUnavailable(RubricJudgeError):
    """Jobs need Redis (the queue) and a database the workers share."""

    status_code = 503
