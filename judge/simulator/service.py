"""Simulated patient turns and perturbed messages, cached by everything that decides them.

A turn is cached by (simulator profile, case, dialogue as the simulator sees it, seed): a re-run of an episode
is reproducible and costs no call. The cache is the engine's verdict cache (Redis or in-process), under keys
of their own; losing it loses nothing but the calls it saved.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from judge.errors import LimitExceeded
from judge.profiles import ChatProfile
from judge.runtime import Runtime
from judge.samples import Message, normalise_text, split_completion
from judge.simulator.chat import ChatAnswer, ChatModels
from judge.simulator.errors import SimulatorFailed
from judge.simulator.profiles import ChatProfiles
from judge.simulator.prompts import (
    SIMULATOR_PROTOCOL_VERSION,
    parse_patient_turn,
    parse_rewrite,
    render_perturber,
    render_simulator,
)
from judge.simulator.schemas import (
    DoneReason,
    Intensity,
    Language,
    PatientCase,
    PerturbationType,
    PerturbRequest,
    SimulateRequest,
)


@dataclass(frozen=True)
class SimulatedTurn:
    """The patient's next turn (None when the visit was already over) and whether the visit ends with it."""

    utterance: str | None
    done: bool
    reason: DoneReason
    cached: bool
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    format: str | None = None

    def as_response(self) -> dict[str, Any]:
        return {
            "message": None if self.utterance is None else {"role": "user", "content": self.utterance},
            "done": self.done,
            "reason": self.reason,
            "usage": {
                "calls": self.calls,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cached": self.cached,
            },
        }


@dataclass(frozen=True)
class Rewrite:
    level: Intensity
    text: str
    types: list[PerturbationType]
    cached: bool
    calls: int = 0


def _key(kind: str, *parts: Any) -> str:
    body = orjson.dumps([kind, SIMULATOR_PROTOCOL_VERSION, *parts], option=orjson.OPT_SORT_KEYS)
    return f"sim:{kind}:{hashlib.sha256(body).hexdigest()}"


def seen_dialogue(messages: list[Message]) -> list[list[str]]:
    """The dialogue as the simulator sees it (the doctor's replies without their CoT), for cache keys."""
    seen = []
    for m in messages:
        if m.role == "system":
            continue
        text = split_completion(m.content)[1] if m.role == "assistant" else m.content
        seen.append([m.role, normalise_text(text)])
    return seen


def policy_turns(messages: list[Message]) -> int:
    return sum(1 for m in messages if m.role == "assistant")


class SimulatorService:
    """Patient turns, perturbations and policy generations for the API, the CLI and the offline loops."""

    def __init__(self, runtime: Runtime, profiles: ChatProfiles | None = None) -> None:
        self.runtime = runtime
        self.profiles = profiles or ChatProfiles.from_file(runtime.settings.judges_file)
        self.models = ChatModels()

    async def aclose(self) -> None:
        await self.models.aclose()

    # -- the API's requests -------------------------------------------------------------------------------

    async def simulate(self, request: SimulateRequest) -> dict[str, Any]:
        """``POST /v1/simulate``: ``{message, done, reason, usage}``."""
        self._check_lengths(request.messages)
        profile = self.profiles.simulator(request.simulator)
        turn = await self.next_turn(
            profile,
            request.case,
            request.messages,
            seed=request.seed,
            max_turns=request.max_turns,
            use_cache=request.cache,
        )
        return {"simulator": profile.name, **turn.as_response()}

    async def perturb_request(self, request: PerturbRequest) -> dict[str, Any]:
        """``POST /v1/perturb``: one rewrite per level, each labelled with the perturbation types used."""
        self._check_text(request.text, "text")
        profile = self.profiles.simulator(request.simulator)
        rewrites = [
            await self.perturb(
                profile, request.text, level, request.types, request.language, seed=request.seed,
                use_cache=request.cache,
            )
            for level in request.levels
        ]  # fmt: skip
        return {
            "simulator": profile.name,
            "original": request.text,
            "rewrites": [{"level": r.level, "text": r.text, "types": r.types, "cached": r.cached} for r in rewrites],
            "usage": {"calls": sum(r.calls for r in rewrites), "cached": sum(r.cached for r in rewrites)},
        }

    # -- building blocks ----------------------------------------------------------------------------------

    async def next_turn(
        self,
        profile: ChatProfile,
        case: PatientCase,
        messages: list[Message],
        *,
        seed: int | None = None,
        max_turns: int | None = None,
        use_cache: bool = True,
    ) -> SimulatedTurn:
        """The patient's next turn; ``messages`` empty asks for the opening turn."""
        cap = max_turns or case.max_turns
        if messages and policy_turns(messages) >= cap:
            return SimulatedTurn(utterance=None, done=True, reason="max_turns", cached=False)
        key = _key("turn", profile.hash, case.hash, seen_dialogue(messages), seed)
        if use_cache:
            found = (await self.runtime.cache.get_many([key])).get(key)
            if found is not None:
                stored = orjson.loads(found)
                # Usage counts what this request cost: nothing.
                return SimulatedTurn(
                    **{**stored, "cached": True, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
                )
        rendered = render_simulator(case, messages)
        answer = await self.models.get(profile).complete(rendered.messages(), seed=seed, json_output=True)
        parsed = parse_patient_turn(answer.content)
        if parsed is None:
            raise SimulatorFailed(
                f"simulator {profile.name!r} answered without a patient utterance: {answer.content[:200]!r}",
                field="simulator",
            )
        reason: DoneReason = "need_met" if parsed.need_met else "patient_ended" if parsed.end_visit else "continue"
        turn = SimulatedTurn(
            utterance=parsed.utterance,
            done=reason != "continue",
            reason=reason,
            cached=False,
            calls=1,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            format=parsed.format,
        )
        if use_cache:
            stored = {k: v for k, v in asdict(turn).items() if k not in ("cached", "calls")}
            await self.runtime.cache.set_many({key: orjson.dumps(stored)})
        return turn

    async def perturb(
        self,
        profile: ChatProfile,
        text: str,
        level: Intensity,
        types: list[PerturbationType],
        language: Language,
        *,
        seed: int | None = None,
        use_cache: bool = True,
    ) -> Rewrite:
        """``text`` at ``level``; ``formal`` is the text itself (no call)."""
        if level == "formal":
            return Rewrite(level=level, text=text, types=[], cached=False)
        key = _key("perturb", profile.hash, normalise_text(text), level, sorted(types), language, seed)
        if use_cache:
            found = (await self.runtime.cache.get_many([key])).get(key)
            if found is not None:
                stored = orjson.loads(found)
                return Rewrite(level=level, text=stored["text"], types=stored["types"], cached=True)
        rendered = render_perturber(text, level, types, language)
        answer = await self.models.get(profile).complete(rendered.messages(), seed=seed, json_output=True)
        parsed = parse_rewrite(answer.content, types)
        if parsed is None:
            raise SimulatorFailed(
                f"perturber {profile.name!r} answered without a rewrite: {answer.content[:200]!r}", field="simulator"
            )
        rewrite, used = parsed
        if use_cache:
            await self.runtime.cache.set_many({key: orjson.dumps({"text": rewrite, "types": used})})
        return Rewrite(level=level, text=rewrite, types=used, cached=False, calls=1)

    async def generate(self, policy: ChatProfile, messages: list[Message], *, seed: int | None = None) -> ChatAnswer:
        """The policy's next turn (its raw completion, ``<think>`` block included when it writes one)."""
        payload = [{"role": m.role, "content": m.content} for m in messages]
        return await self.models.get(policy).complete(payload, seed=seed)

    def _check_lengths(self, messages: list[Message]) -> None:
        for i, message in enumerate(messages):
            self._check_text(message.content, f"messages[{i}].content")

    def _check_text(self, text: str, field: str) -> None:
        limit = self.runtime.settings.max_text_chars
        if len(text) > limit:
            raise LimitExceeded(f"{len(text)} characters; the limit is {limit}", field=field)
