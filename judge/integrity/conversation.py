"""Conversations that cannot be judged: the judged assistant turn must answer a patient turn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class _Turn(Protocol):
    @property
    def role(self) -> str: ...


def conversation_problem(messages: Sequence[_Turn]) -> str | None:
    """Why ``messages`` (the conversation before the judged turn) cannot be judged, or None.

    System messages are set aside; what remains must end with a patient (user) turn. A conversation that ends
    with an assistant turn would have the judged turn answer the assistant (or itself), and one with no patient
    turn at all has nothing to answer.
    """
    turns = [message.role for message in messages if message.role != "system"]
    if not turns:
        return "conversation: there is no patient (user) turn before the judged response"
    if turns[-1] != "user":
        return (
            f"conversation: the last turn before the judged response is {turns[-1]!r}; it must be the patient's (user)"
        )
    return None
