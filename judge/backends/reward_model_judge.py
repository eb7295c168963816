"""Judge backend for the local reward model: every axis from one forward pass, through the batching engine.

The integer ``score`` is the expected score rounded half up (both heads), ``expected`` the probability-
weighted score. Rounding the expectation was chosen over the most probable level because it agrees
better with the judge it was trained on (held-out QWK 0.94 vs 0.85 in bench/bench_reward_model.py): the
mode jumps between neighbouring levels when two are plausible, the expectation moves smoothly. It also
gives one rule for the ordinal and the regression head.
torch is not imported here: the engine is built elsewhere (the API lifespan or the CLI) and handed in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.verdicts import AxisResult, AxisStatus, JudgeOutcome, Usage
from reward_model.data import Conversation
from rubrics.schema import Rubric

if TYPE_CHECKING:
    from reward_model.engine import RewardEngine


def conversation_of(sample: Sample) -> Conversation:
    return Conversation(
        messages=tuple((m.role, m.content) for m in sample.messages),
        reasoning=sample.reasoning,
        response=sample.response,
    )


class RewardModelJudge:
    """A :class:`~judge.backends.base.JudgeBackend` over a :class:`~reward_model.engine.RewardEngine`."""

    def __init__(self, profile: JudgeProfile, engine: RewardEngine, *, owns_engine: bool = False) -> None:
        self.profile = profile
        self.engine = engine
        # An engine shared between profiles is closed by whoever built it (the lifespan), not here.
        self._owns_engine = owns_engine

    def check_rubric(self, rubric: Rubric) -> None:
        """Raise unless the loaded model was trained for this rubric (same content, or at least its axes)."""
        model = self.engine.model
        if model.rubric_hash is not None and model.rubric_hash != rubric.content_hash:
            raise JudgeUnavailable(
                f"judge {self.profile.name!r}: reward model {model.version[:12]} was trained for rubric "
                f"{model.rubric_ref} ({model.rubric_hash[:12]}), not {rubric.ref} ({rubric.content_hash[:12]})",
                field="rubric",
            )
        missing = [key for key in rubric.axis_keys if key not in model.axis_keys]
        if missing:
            raise JudgeUnavailable(
                f"judge {self.profile.name!r}: the reward model has no head for axes {missing}", field="rubric"
            )

    async def score(self, sample: Sample, rubric: Rubric) -> JudgeOutcome:
        self.check_rubric(rubric)
        keys = rubric.axis_keys
        try:
            [scores] = await self.engine.score([conversation_of(sample)])
        except Exception as exc:  # engine closed or forward failed: every axis fails, no score is made up
            return JudgeOutcome.all_failed(keys, AxisStatus.judge_error, f"reward model: {exc}", Usage(calls=1))
        note = None
        if scores.truncated:
            kept = self.engine.model.max_length
            note = f"input cut to its last {kept} of {scores.n_tokens} tokens (start of the context dropped)"
        axes = {
            key: AxisResult(
                score=scores.level_of(key),
                expected=min(5.0, max(1.0, scores.expected_of(key))),
                status=AxisStatus.ok,
                score_method="model",
                rationale=note,
            )
            for key in keys
        }
        scored_tokens = min(scores.n_tokens, self.engine.model.max_length)
        return JudgeOutcome(axes=axes, usage=Usage(calls=1, prompt_tokens=scored_tokens))

    async def aclose(self) -> None:
        if self._owns_engine:
            await self.engine.aclose()
