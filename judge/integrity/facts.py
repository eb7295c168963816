"""What aggregation needs to know about a sample besides its scores, computed in one place for every route.

``/v1/score``, ``/v1/rewards``, ``/get_reward``, jobs and the stored verdict summary all aggregate through
:func:`output_facts`, so a length penalty or a language gate cannot hold on one route and not on another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from judge.integrity.language import language_mismatch
from judge.integrity.padding import keyword_padding
from judge.samples import Sample
from rubrics.schema import Rubric


@dataclass(frozen=True, slots=True)
class OutputFacts:
    # Characters of the CoT and response as the policy wrote them, before any RJ_MAX_*_CHARS clipping.
    output_chars: int
    # The CoT or response was cut before judging (the judge saw less than the policy wrote).
    truncated: bool
    # The response is clearly in another language than the patient's latest turn.
    language_mismatch: bool
    # The CoT repeats the rubric's axis titles far more than doing the steps needs.
    keyword_padding: bool = False

    def aggregation_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`rubrics.aggregation.aggregate` these facts decide."""
        return {
            "output_chars": self.output_chars,
            "truncated": self.truncated,
            "language_mismatch": self.language_mismatch,
            "keyword_padding": self.keyword_padding,
        }


def level_distributions(axes: Mapping[str, Any]) -> dict[str, dict[int, float] | None]:
    """Per axis, its level distribution from an AxisResult or its JSON (cache hits keep string keys)."""
    found: dict[str, dict[int, float] | None] = {}
    for key, axis in axes.items():
        raw = axis.get("probabilities") if isinstance(axis, dict) else getattr(axis, "probabilities", None)
        found[key] = {int(level): float(p) for level, p in raw.items()} if raw else None
    return found


def output_facts(sample: Sample, rubric: Rubric | None = None) -> OutputFacts:
    """The facts of ``sample`` under ``rubric``: language and padding are checked only if the rubric gates them."""
    # The text checks run only for a rubric that gates on them: this runs for every item of every cached batch.
    policy = rubric.reward_policy if rubric is not None else None
    mismatch = False
    if policy is not None and policy.language_gate is not None:
        patient = next((m.content for m in reversed(sample.messages) if m.role == "user"), "")
        mismatch = language_mismatch(patient, sample.response)
    padded = rubric is not None and policy is not None and policy.padding_gate is not None
    return OutputFacts(
        output_chars=sample.original_chars,
        truncated=sample.clipped,
        language_mismatch=mismatch,
        keyword_padding=padded and rubric is not None and keyword_padding(sample.reasoning, rubric),
    )
