"""The configured judges, without secrets: what ``rubric-judge judges list`` and ``GET /v1/judges`` show."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from judge.profiles import JudgeProfile, ProfileRegistry

# The rubric kinds each backend scores (see judge.service.scores_kind).
KINDS = {"rules": ["rules"], "openai": ["llm", "rules"], "reward_model": ["llm"]}


def public_url(url: str | None) -> str | None:
    """``url`` without user info (a password in a base URL is a secret too)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def describe(profile: JudgeProfile) -> dict[str, Any]:
    """One profile as JSON: never an API key, only the name of its variable and whether it is set."""
    body: dict[str, Any] = {
        "name": profile.name,
        "backend": profile.backend,
        "rubric_kinds": KINDS.get(profile.backend, []),
        "model": profile.model,
        "base_url": public_url(profile.base_url),
        "api_key_env": profile.api_key_env,
        "api_key_set": bool(os.environ.get(profile.api_key_env)) if profile.api_key_env else None,
        "structured_output": profile.structured_output,
        "logprobs": profile.logprobs,
        "mode": profile.mode,
        "language": profile.language,
        "concurrency": profile.concurrency,
        "timeout_s": profile.timeout_s,
        "reward_model": profile.reward_model,
        "aliases": list(profile.aliases),
        "profile_hash": profile.hash,
    }
    return body


def catalog(profiles: ProfileRegistry) -> list[dict[str, Any]]:
    """Every configured profile (the built-in ``rules`` first), by name."""
    return [describe(p) for p in sorted(profiles.all(), key=lambda p: (p.backend != "rules", p.name))]
