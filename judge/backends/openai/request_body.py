"""Chat-completions request bodies, serialised with as little repeated work as possible.

Everything of a body but its messages (model, sampling options, the output schema: a few KB of JSON) is the same
for every sample of one rubric's axes, and so is the prompt's static start (system text, rubric, format; ~7,000 of
a joint prmed prompt's ~9,000 characters). Both are serialised once per judge; a request splices them around the
part that differs. A JSON string's escaping is character by character, so the escaped static prefix followed by
the escaped rest is the escaped whole.
"""

from __future__ import annotations

import orjson

from judge.backends.openai.answer_format import group_response_format, response_format
from judge.backends.openai.group_prompts import RenderedGroupPrompt
from judge.backends.openai.prompts import RenderedPrompt
from judge.profiles import JudgeProfile

# Distinct static starts kept (rubrics x axes x languages x rationale modes: a handful in practice).
_MAX_STATIC = 256


class RequestBodies:
    """A judge's request bodies (its profile fixes model, options and schema modes)."""

    def __init__(self, profile: JudgeProfile, model: str) -> None:
        self._profile = profile
        self._model = model
        self._tails: dict[tuple[tuple[str, ...], tuple[str, ...] | None], bytes] = {}
        self._static_json: dict[tuple[str, str], bytes] = {}

    def body(self, messages_json: bytes, keys: list[str], labels: list[str] | None) -> bytes:
        """The whole body: serialised ``messages`` first, then the members :meth:`tail` keeps."""
        # One join: one copy of the ~25 KB messages, where chained + made three.
        return b"".join((b'{"messages":', messages_json, b",", self.tail(keys, labels)))

    def messages_json(self, prompt: RenderedPrompt | RenderedGroupPrompt) -> bytes:
        """``prompt``'s system and user messages as JSON, its shared start serialised once."""
        static = prompt.static_prefix
        if not static or not prompt.user.startswith(static):
            return orjson.dumps(prompt.messages())
        key = (prompt.system, static)
        head = self._static_json.get(key)
        if head is None:
            if len(self._static_json) >= _MAX_STATIC:
                self._static_json.clear()
            # '[{"role":"system","content":"…"},{"role":"user","content":"<static>' with no closing quote.
            system = orjson.dumps({"role": "system", "content": prompt.system})
            head = self._static_json[key] = b"[" + system + b',{"role":"user","content":' + orjson.dumps(static)[:-1]
        return head + orjson.dumps(prompt.user[len(static) :])[1:] + b"}]"

    def tail(self, keys: list[str], labels: list[str] | None) -> bytes:
        """Everything of a body but its messages, once per axes and labels (``extra_body`` may override any of it)."""
        cache_key = (tuple(keys), tuple(labels) if labels is not None else None)
        tail = self._tails.get(cache_key)
        if tail is None:
            profile = self._profile
            if labels is None:
                fmt = response_format(profile.structured_output, keys, profile.rationale)
            else:
                fmt = group_response_format(profile.structured_output, labels, keys, profile.rationale)
            body: dict[str, object] = {
                "model": self._model,
                "temperature": profile.temperature,
                "max_tokens": profile.max_tokens,
            }
            if fmt is not None:
                body["response_format"] = fmt
            if profile.logprobs:
                body.update(logprobs=True, top_logprobs=profile.top_logprobs)
            body.update(profile.extra_body)  # never "messages" (JudgeProfile refuses it)
            # The object's members after "messages": its opening brace dropped, its closing one kept.
            tail = self._tails[cache_key] = orjson.dumps(body)[1:]
        return tail

    @property
    def static_starts(self) -> int:
        """How many distinct static starts are serialised and kept."""
        return len(self._static_json)
