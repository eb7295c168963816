"""Cache keys for verdicts: one per (rubric, profile, sample), and in group mode one per group composition too."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from judge.profiles import JudgeProfile
from judge.samples import Sample
from rubrics.schema import Rubric


def cache_key(rubric: Rubric, profile: JudgeProfile, sample: Sample) -> str:
    """A sample's key when judged alone."""
    return hashlib.sha256(f"{rubric.content_hash}:{profile.hash}:{sample.hash}".encode()).hexdigest()


def group_composition(samples: Sequence[Sample]) -> str:
    """Hash of a group's distinct samples, whatever their order or repeats."""
    return hashlib.sha256(",".join(sorted({s.hash for s in samples})).encode()).hexdigest()


def group_cache_key(rubric: Rubric, profile: JudgeProfile, composition: str, sample: Sample) -> str:
    """A group-mode sample's key: its score is relative to the other candidates, so the composition is part of it."""
    return hashlib.sha256(
        f"{rubric.content_hash}:{profile.hash}:group:{composition}:{sample.hash}".encode()
    ).hexdigest()
