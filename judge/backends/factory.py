"""Build the backend a judge profile names."""

from __future__ import annotations

from typing import Any

from judge.backends.base import JudgeBackend
from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile


def build_backend(profile: JudgeProfile, **kwargs: Any) -> JudgeBackend:
    """The backend ``profile`` names, imported lazily so that a process loads only the stack it uses.

    ``kwargs`` go to the backend's constructor: ``client=`` for the OpenAI judge, ``engine=`` for the
    reward model (unavailable without one); the rules judge takes none.
    """
    if profile.backend == "openai":
        from judge.backends.openai.judge import OpenAIJudge

        return OpenAIJudge(profile, **kwargs)
    if profile.backend == "rules":
        from judge.backends.rules import RulesJudge

        return RulesJudge(profile)
    if profile.backend == "reward_model":
        # The engine (torch, weights) is loaded by whoever owns its lifetime and handed in; none, no backend.
        if "engine" not in kwargs:
            raise JudgeUnavailable("reward model backend not installed", field="backend")
        from judge.backends.reward_model_judge import RewardModelJudge

        return RewardModelJudge(profile, **kwargs)
    raise JudgeUnavailable(f"unknown judge backend {profile.backend!r}", field="backend")
