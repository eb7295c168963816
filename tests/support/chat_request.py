"""A chat-completions request as the loopback judge received it, read as a third party would read it: the
judged texts in the nonce fences, the rubric's axes, a group's candidates, and what kind of call it is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Deliberately not imported from judge.backends.openai.prompts: the server reads prompts as a third party would.
_AXES_LINE = re.compile(r"^RUBRIC_AXES:[ \t]*(.*)$", re.MULTILINE)
_CANDIDATES_LINE = re.compile(r"^RUBRIC_CANDIDATES:[ \t]*(.*)$", re.MULTILINE)
# Fences of the judged turn; the others (conversation, reference) are context shared by a group's candidates.
JUDGED_FENCES = ("REASONING", "RESPONSE")
FENCE = re.compile(r"<<<([A-Z_]+)_([0-9a-f]{8,})>>>\n(.*?)\n<<<END_\1_\2>>>", re.DOTALL)
_SIMULATOR_LINE = re.compile(r"^PATIENT_SIMULATOR:", re.MULTILINE)
_PERTURBER_LINE = re.compile(r"^PATIENT_PERTURBER:", re.MULTILINE)
# How a prompt asks for brief rationales (the answer template's placeholder), in either prompt language.
_BRIEF_PLACEHOLDERS = ("<不超过20字的理由>", "<at most 12 words>")


@dataclass(frozen=True)
class ChatRequest:
    """A chat-completions request as the server received it."""

    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float  # time.monotonic(), comparable with the test process's clock
    path: str = "/v1/chat/completions"
    query: str = ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def prompt(self) -> str:
        """Every message's text, joined."""
        return "\n".join(str(m.get("content") or "") for m in self.messages if isinstance(m, dict))

    @property
    def fenced_texts(self) -> list[str]:
        """The texts inside the prompt's nonce fences (the judged material)."""
        return [match.group(3) for match in FENCE.finditer(self.prompt)]

    @property
    def axis_keys(self) -> list[str]:
        """Axis keys from the response_format schema, else from the last ``RUBRIC_AXES:`` line outside fences."""
        try:
            axes = self.body["response_format"]["json_schema"]["schema"]["properties"]["axes"]
            return [str(key) for key in axes.get("required") or axes["properties"]]
        except (KeyError, TypeError, AttributeError):
            pass
        found = _AXES_LINE.findall(FENCE.sub("", self.prompt))
        if not found:
            return []
        return [key.strip() for key in found[-1].split(",") if key.strip()]

    @property
    def fenced(self) -> list[tuple[str, str]]:
        """(label, text) of every fence, in order."""
        return [(match.group(1), match.group(3)) for match in FENCE.finditer(self.prompt)]

    @property
    def candidate_labels(self) -> list[str]:
        """A group request's candidate labels (schema ``responses``, else ``RUBRIC_CANDIDATES:``); [] otherwise."""
        try:
            responses = self.body["response_format"]["json_schema"]["schema"]["properties"]["responses"]
            return [str(label) for label in responses.get("required") or responses["properties"]]
        except (KeyError, TypeError, AttributeError):
            pass
        prompt = self.prompt
        if "RUBRIC_CANDIDATES:" not in prompt:  # most requests: skip the fence scan
            return []
        found = _CANDIDATES_LINE.findall(FENCE.sub("", prompt))
        if not found:
            return []
        return [label.strip() for label in found[-1].split(",") if label.strip()]

    def judged_texts(self, candidate: str | None = None) -> list[str]:
        """The fenced texts one candidate is judged on (all of them for a single-sample request).

        For a group candidate: the shared context plus its own reasoning and response, in the order a
        single-sample prompt has them, so a candidate's default scores equal those it gets judged alone.
        """
        if candidate is None:
            return [text for _, text in self.fenced]
        own = {f"{name}_{candidate}" for name in JUDGED_FENCES}
        return [text for label, text in self.fenced if label in own or not label.startswith(JUDGED_FENCES)]

    @property
    def is_simulator(self) -> bool:
        """A patient simulator's request (``PATIENT_SIMULATOR:`` line outside the fences)."""
        return "PATIENT_SIMULATOR:" in self.prompt and bool(_SIMULATOR_LINE.search(FENCE.sub("", self.prompt)))

    @property
    def is_perturber(self) -> bool:
        """A perturber's request (``PATIENT_PERTURBER:`` line outside the fences)."""
        return "PATIENT_PERTURBER:" in self.prompt and bool(_PERTURBER_LINE.search(FENCE.sub("", self.prompt)))

    @property
    def rationale_mode(self) -> str:
        """What the request asks the judge to write before each score: ``full``, ``brief`` or ``none``.

        From the response_format schema (an axis that is a bare integer: none), else from the prompt's answer
        template, read as a third party would.
        """
        try:
            schema = self.body["response_format"]["json_schema"]["schema"]["properties"]
            holder = schema.get("axes") or next(iter(schema["responses"]["properties"].values()))
            first = next(iter(holder["properties"].values()))
            if first.get("type") == "integer":
                return "none"
        except (KeyError, TypeError, AttributeError, StopIteration):
            outside = FENCE.sub("", self.prompt)
            keys = self.axis_keys
            if keys and f'"{keys[0]}": <1-5>' in outside:
                return "none"
        outside = FENCE.sub("", self.prompt)
        return "brief" if any(p in outside for p in _BRIEF_PLACEHOLDERS) else "full"

    @property
    def wants_logprobs(self) -> bool:
        return bool(self.body.get("logprobs"))

    @property
    def top_logprobs(self) -> int:
        value = self.body.get("top_logprobs")
        return int(value) if isinstance(value, int) and value > 0 else 1
