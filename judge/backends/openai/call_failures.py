"""A judge call's failure as an axis status: every exception a call can end with becomes one, never a score."""

from __future__ import annotations

import logging

import openai
from openai.types.chat import ChatCompletion

from judge.backends.openai.client import parse_completion, refused
from judge.verdicts import AxisStatus

logger = logging.getLogger(__name__)


class CallFailed(Exception):
    """A judge call that failed after its retries, already classified."""

    def __init__(self, status: AxisStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def classify(exc: Exception, *, judge: str, timeout_s: float, base_url: object) -> CallFailed:
    """``exc`` (the last failure of a call under judge profile ``judge``) as a status and a message."""
    if isinstance(exc, CallFailed):
        return exc
    if isinstance(exc, openai.APITimeoutError) and not refused(exc):
        return CallFailed(AxisStatus.timeout, f"judge call timed out (timeout_s={timeout_s})")
    if isinstance(exc, openai.APIStatusError):
        return CallFailed(AxisStatus.judge_error, f"judge answered HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, openai.APIConnectionError):
        # aiohttp words a refused connect as "Request timed out."; say what happened.
        reason = "connection refused" if refused(exc) else str(exc)
        return CallFailed(AxisStatus.judge_error, f"cannot connect to judge at {base_url}: {reason}")
    if not isinstance(exc, openai.OpenAIError):
        logger.warning("judge %s: unexpected failure", judge, exc_info=exc)
    return CallFailed(AxisStatus.judge_error, f"{type(exc).__name__}: {exc}")


def judge_completion(raw: bytes) -> ChatCompletion:
    """The judge's chat completion (:func:`judge.backends.openai.client.parse_completion`); garbage is a failure."""
    return parse_completion(raw, lambda problem: CallFailed(AxisStatus.judge_error, f"judge {problem}"))
