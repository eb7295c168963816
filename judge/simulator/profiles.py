"""Simulator and policy profiles from the judges file (``simulators:`` and ``policies:`` sections)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from judge.errors import InvalidRubric
from judge.profiles import ChatProfile, JudgeProfile, JudgesFile, read_judges_yaml
from judge.simulator.errors import ChatProfileNotFound


class ChatProfiles:
    """Simulators and policies by name. A policy may also be any OpenAI judge profile (same server, other use)."""

    def __init__(
        self,
        simulators: list[ChatProfile] | None = None,
        policies: list[ChatProfile] | None = None,
        judges: list[JudgeProfile] | None = None,
    ) -> None:
        self.simulators = {p.name: p for p in simulators or []}
        self.policies = {p.name: p for p in policies or []}
        self._judges = {p.name: p for p in judges or [] if p.backend == "openai" and p.model}

    @classmethod
    def from_file(cls, path: Path | None) -> ChatProfiles:
        if path is None:
            return cls()
        raw = read_judges_yaml(path)  # bounded like rubric YAML (size, aliases)
        try:
            parsed = JudgesFile.model_validate(raw)
        except ValidationError as exc:
            raise InvalidRubric(f"invalid judges file {path}: {exc}", field="judges_file") from exc
        return cls(parsed.simulators, parsed.policies, parsed.judges)

    def simulator(self, name: str, *, field: str = "simulator") -> ChatProfile:
        try:
            return self.simulators[name]
        except KeyError:
            known = ", ".join(sorted(self.simulators)) or "none (add a `simulators:` section to the judges file)"
            raise ChatProfileNotFound(f"unknown simulator profile {name!r}; known: {known}", field=field) from None

    def policy(self, name: str) -> ChatProfile:
        """A ``policies:`` profile, else a simulator or OpenAI judge profile of that name used as a policy."""
        if name in self.policies:
            return self.policies[name]
        if name in self.simulators:
            return self.simulators[name]
        judge = self._judges.get(name)
        if judge is not None:
            return ChatProfile(
                name=judge.name, model=judge.model or "", base_url=judge.base_url, api_key_env=judge.api_key_env,
                temperature=judge.temperature, max_tokens=judge.max_tokens, structured_output="none",
                concurrency=judge.concurrency, timeout_s=judge.timeout_s, max_retries=judge.max_retries,
                retry_budget_s=judge.retry_budget_s, extra_body=dict(judge.extra_body),
            )  # fmt: skip
        known = ", ".join(sorted({*self.policies, *self.simulators, *self._judges})) or "none"
        raise ChatProfileNotFound(f"unknown policy profile {name!r}; known: {known}", field="policy")
