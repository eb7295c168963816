"""The reward_model judge backend: every axis ok from one forward, method "model", never an invented score."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from judge.backends.base import JudgeBackend
from judge.backends.reward_model_judge import RewardModelJudge
from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile
from judge.samples import Message, SampleIn, normalise
from judge.verdicts import AxisStatus
from reward_model.data import LabelledRecord
from reward_model.engine import RewardEngine
from reward_model.model import ScoringModel
from rubrics.schema import Rubric

from .support import make_rubric

PROFILE = JudgeProfile(name="rm-local", backend="reward_model", reward_model="rm-test")


def _sample(record: LabelledRecord, user: str | None = None):
    conv = record.conversation
    messages = [Message(role=role, content=user or content) for role, content in conv.messages]  # type: ignore[arg-type]
    return normalise(SampleIn(messages=messages, reasoning=conv.reasoning, response=conv.response))


@pytest.fixture
async def judge(scoring: ScoringModel) -> AsyncIterator[RewardModelJudge]:
    judge = RewardModelJudge(PROFILE, RewardEngine(scoring), owns_engine=True)
    yield judge
    await judge.aclose()


async def test_every_axis_ok_with_the_model_method(
    judge: RewardModelJudge, scoring: ScoringModel, rubric: Rubric, records: list[LabelledRecord]
) -> None:
    assert isinstance(judge, JudgeBackend)
    outcome = await judge.score(_sample(records[5]), rubric)
    [direct] = scoring.score([records[5].conversation])
    assert outcome.complete and outcome.error is None
    assert list(outcome.axes) == rubric.axis_keys
    for key, axis in outcome.axes.items():
        assert axis.status is AxisStatus.ok and axis.score_method == "model"
        assert axis.score == direct.level_of(key)  # the expected score rounded half up
        assert axis.expected == pytest.approx(direct.expected_of(key), abs=1e-4)
        assert axis.rationale is None
    assert outcome.usage.calls == 1 and outcome.usage.prompt_tokens > 0


async def test_truncated_input_is_scored_and_says_so(
    judge: RewardModelJudge, rubric: Rubric, records: list[LabelledRecord]
) -> None:
    outcome = await judge.score(_sample(records[0], user="我 头疼 " * 500), rubric)
    assert outcome.complete
    assert all(a.rationale and "start of the context dropped" in a.rationale for a in outcome.axes.values())


async def test_a_rubric_the_model_was_not_trained_for_is_refused(
    judge: RewardModelJudge, records: list[LabelledRecord]
) -> None:
    with pytest.raises(JudgeUnavailable, match="trained for rubric"):
        await judge.score(_sample(records[0]), make_rubric(version=2))


async def test_engine_failure_fails_every_axis_without_scores(
    scoring: ScoringModel, rubric: Rubric, records: list[LabelledRecord]
) -> None:
    engine = RewardEngine(scoring)
    await engine.aclose()
    judge = RewardModelJudge(PROFILE, engine)
    outcome = await judge.score(_sample(records[0]), rubric)
    assert not outcome.complete and outcome.error and "closed" in outcome.error
    assert all(a.status is AxisStatus.judge_error and a.score is None for a in outcome.axes.values())
