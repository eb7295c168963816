"""Build the backend a judge profile names."""

from __future__ import annotations

from typing import Any

from judge.backends.base import JudgeBackend
from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile


def build_backend(profile: JudgeProfile, **kwargs: Any) -> JudgeBackend:
    """A backend for ``profile``; ``kwargs`` (e.g. ``client=``) go to the OpenAI judge's constructor.

    Backends are imported here, lazily, so that a process only loads the stack it uses.
    """
    if profile.backend == "openai":
        from judge.backends.openai_judge import OpenAIJudge

        return OpenAIJudge(profile, **kwargs)
    if profile.backend == "rules":
        from judge.backends.rules import RulesJudge

        return RulesJudge(profile)
    if profile.backend == "reward_model":
        raise JudgeUnavailable("reward model backend not installed", field="backend")
    raise JudgeUnavailable(f"unknown judge backend {profile.backend!r}", field="backend")
