"""Conversations that cannot be judged (issue 9, exploit 8)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from judge.integrity.conversation import conversation_problem
from judge.samples import Message, SampleIn

SYSTEM = Message(role="system", content="你是一名全科医生。")
PATIENT = Message(role="user", content="医生，我头疼三天了。")
ASSISTANT = Message(role="assistant", content="请问疼在哪个位置？")


def test_a_conversation_ending_with_the_patient_is_fine() -> None:
    assert conversation_problem([SYSTEM, PATIENT]) is None
    assert conversation_problem([PATIENT, ASSISTANT, PATIENT]) is None
    assert conversation_problem([SYSTEM, PATIENT, SYSTEM]) is None  # a trailing system note is not a turn


@pytest.mark.parametrize(
    "messages",
    [[SYSTEM, PATIENT, ASSISTANT], [SYSTEM], [ASSISTANT]],
    ids=["ends-with-assistant", "system-only", "assistant-only"],
)
def test_no_patient_turn_to_answer_is_a_problem(messages: list[Message]) -> None:
    problem = conversation_problem(messages)
    assert problem is not None and problem.startswith("conversation:")


def test_a_sample_with_such_a_conversation_is_refused_with_reason_conversation() -> None:
    with pytest.raises(ValidationError) as info:
        SampleIn(messages=[SYSTEM, PATIENT, ASSISTANT], response="请及时就医。")
    assert info.value.errors()[0]["type"] == "conversation"
