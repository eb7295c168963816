"""Cache keys for verdicts: one per (rubric, profile, sample), and in group mode one per group composition too."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from judge.profiles import JudgeProfile
from judge.samples import Sample
from rubrics.schema import Rubric


def _split(rubric: Rubric, profile: JudgeProfile) -> str:
    """A marker for group profiles under a rubric with response-only layers.

    Before, such a profile showed the CoT to every axis; now its response-only axes get a call without it. The
    verdicts judged the old way must not be served as if judged the new way; keys of every other rubric and
    profile stay as they were (their prompts did not change), so their cached verdicts stay valid.
    """
    return ":response-only-split" if profile.mode == "group" and rubric.judging.response_only_layers else ""


def cache_key(rubric: Rubric, profile: JudgeProfile, sample: Sample) -> str:
    """A sample's key when judged alone."""
    split = _split(rubric, profile)
    return hashlib.sha256(f"{rubric.content_hash}:{profile.hash}{split}:{sample.hash}".encode()).hexdigest()


def group_composition(samples: Sequence[Sample]) -> str:
    """Hash of a group's distinct samples, whatever their order or repeats."""
    return hashlib.sha256(",".join(sorted({s.hash for s in samples})).encode()).hexdigest()


def group_cache_key(rubric: Rubric, profile: JudgeProfile, composition: str, sample: Sample) -> str:
    """A group-mode sample's key: its score is relative to the other candidates, so the composition is part of it."""
    split = _split(rubric, profile)
    return hashlib.sha256(
        f"{rubric.content_hash}:{profile.hash}{split}:group:{composition}:{sample.hash}".encode()
    ).hexdigest()
