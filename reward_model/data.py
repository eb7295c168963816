"""Training data: labelled records -> chat-rendered, tokenized examples; left truncation; prompt-grouped split.

Records are plain values (no ORM): the caller in ``judge/`` turns stored verdicts into records, and
``records_from_jsonl`` reads human labels. The rendered input is the tokenizer's chat template over the
conversation plus the judged assistant turn (``<think>`` CoT, then the response).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reward_model.config import SplitSettings
from reward_model.errors import InvalidTrainingData

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LEVELS = (1, 2, 3, 4, 5)
ROLES = frozenset({"system", "user", "assistant"})
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Conversation:
    """The conversation up to the judged turn, and the judged turn itself (CoT + response)."""

    messages: tuple[tuple[str, str], ...]
    reasoning: str
    response: str

    @classmethod
    def from_messages(cls, messages: Iterable[Mapping[str, Any]], reasoning: str, response: str) -> Conversation:
        pairs = []
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if role not in ROLES or not isinstance(content, str):
                raise InvalidTrainingData(f"a message needs a role in {sorted(ROLES)} and string content: {message!r}")
            pairs.append((str(role), content))
        return cls(messages=tuple(pairs), reasoning=reasoning, response=response)

    @property
    def prompt_key(self) -> str:
        """Identity of the prompt: rollouts of one prompt share it, so they share a split."""
        body = json.dumps(self.messages, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(body.encode("utf-8")).hexdigest()

    @property
    def content_key(self) -> str:
        body = json.dumps([self.messages, self.reasoning, self.response], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LabelledRecord:
    """One judged sample with every rating it received per axis (one per judge profile or rater)."""

    conversation: Conversation
    scores: Mapping[str, tuple[int, ...]]
    id: str | None = None
    # Prompt identity for the split; defaults to the hash of the conversation.
    group: str | None = None

    @property
    def group_key(self) -> str:
        return self.group if self.group is not None else self.conversation.prompt_key


@dataclass(frozen=True)
class TokenIds:
    """Input already tokenized with the model's tokenizer (e.g. vLLM-style ``/classify`` with token ids)."""

    ids: tuple[int, ...]


@dataclass(frozen=True)
class Encoded:
    """Token ids of one rendered input, after the length rule."""

    input_ids: tuple[int, ...]
    truncated: bool
    # Length before truncation.
    n_tokens: int


@dataclass(frozen=True)
class Example:
    """A training/evaluation example: token ids plus, per axis (in model order), a level distribution or None."""

    input_ids: tuple[int, ...]
    targets: tuple[tuple[float, ...] | None, ...]
    group: str
    truncated: bool = False
    id: str | None = None


@dataclass
class Splits:
    train: list[Example] = field(default_factory=list)
    val: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


# ---------------------------------------------------------------------------------------------- records


def split_completion(completion: str) -> tuple[str, str]:
    """(reasoning, response) of a raw completion at its last ``</think>``; none means all response."""
    close = completion.rfind(THINK_CLOSE)
    if close == -1:
        return "", completion.strip()
    head = completion[:close]
    open_at = head.find(THINK_OPEN)
    reasoning = head[open_at + len(THINK_OPEN) :] if open_at != -1 else head
    return reasoning.strip(), completion[close + len(THINK_CLOSE) :].strip()


def _ratings(axis: str, value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, list | tuple) else [value]
    out = []
    for v in values:
        # bool is an int subclass; a True rating is a data error, not a 1.
        if isinstance(v, bool) or not isinstance(v, int | float) or v not in LEVELS:
            raise InvalidTrainingData(f"axis {axis!r}: ratings must be integers 1..5, got {value!r}", field=axis)
        out.append(int(v))
    if not out:
        raise InvalidTrainingData(f"axis {axis!r}: empty rating list", field=axis)
    return tuple(out)


def record_from_dict(raw: Mapping[str, Any], axis_keys: Sequence[str] | None = None) -> LabelledRecord:
    """A record from a plain dict: ``messages``, ``reasoning`` + ``response`` (or ``completion``), and
    ``scores`` (or ``labels``) mapping axis -> level or list of levels. Unknown axes are an error."""
    if "completion" in raw and raw.get("completion") is not None:
        reasoning, response = split_completion(str(raw["completion"]))
    else:
        reasoning, given = str(raw.get("reasoning") or ""), raw.get("response")
        if not isinstance(given, str):
            raise InvalidTrainingData("a record needs `response` (or `completion`)", field="response")
        response = given
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidTrainingData("a record needs a non-empty `messages` list", field="messages")
    labels = raw.get("scores", raw.get("labels"))
    if not isinstance(labels, Mapping):
        raise InvalidTrainingData("a record needs `scores` (or `labels`): axis -> level(s)", field="scores")
    if axis_keys is not None:
        unknown = set(labels) - set(axis_keys)
        if unknown:
            raise InvalidTrainingData(f"unknown axes {sorted(unknown)}", field="scores")
    scores = {str(axis): _ratings(str(axis), value) for axis, value in labels.items() if value is not None}
    group = raw.get("group", raw.get("prompt_id"))
    return LabelledRecord(
        conversation=Conversation.from_messages(messages, reasoning, response),
        scores=scores,
        id=None if raw.get("id") is None else str(raw["id"]),
        group=None if group is None else str(group),
    )


def records_from_jsonl(path: Path, axis_keys: Sequence[str] | None = None) -> list[LabelledRecord]:
    """Human (or exported judge) labels, one JSON object per line; see :func:`record_from_dict`."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(record_from_dict(json.loads(line), axis_keys))
            except (json.JSONDecodeError, InvalidTrainingData) as exc:
                raise InvalidTrainingData(f"{path}:{lineno}: {exc}", field="data") from exc
    return records


def merge_ratings(records: Iterable[LabelledRecord]) -> list[LabelledRecord]:
    """One record per distinct conversation, pooling the ratings of every judge/rater (soft labels)."""
    merged: dict[str, LabelledRecord] = {}
    for record in records:
        key = record.conversation.content_key
        seen = merged.get(key)
        if seen is None:
            merged[key] = record
            continue
        scores = {
            axis: tuple(seen.scores.get(axis, ())) + tuple(record.scores.get(axis, ()))
            for axis in set(seen.scores) | set(record.scores)
        }
        merged[key] = LabelledRecord(seen.conversation, scores, seen.id, seen.group)
    return list(merged.values())


def level_distribution(ratings: Sequence[int]) -> tuple[float, ...]:
    counts = [0.0] * len(LEVELS)
    for rating in ratings:
        counts[rating - 1] += 1.0
    total = sum(counts)
    return tuple(c / total for c in counts)


# ---------------------------------------------------------------------------------------------- rendering


def assistant_content(reasoning: str, response: str) -> str:
    """The judged turn as the model wrote it: the CoT in a ``<think>`` block, then the response."""
    if not reasoning:
        return response
    return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{response}"


def render(tokenizer: PreTrainedTokenizerBase, conversation: Conversation) -> str:
    """The input text: the tokenizer's chat template over the conversation and the judged turn."""
    chat = [{"role": role, "content": content} for role, content in conversation.messages]
    chat.append({"role": "assistant", "content": assistant_content(conversation.reasoning, conversation.response)})
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(chat, tokenize=False)
        if isinstance(text, str):
            return text
    # No template: ChatML, the format of the Qwen family.
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)


def cut_to_length(ids: Sequence[int], max_length: int) -> Encoded:
    """Keep the last ``max_length`` tokens: the start of the context goes first, the response tail stays."""
    n = len(ids)
    if n <= max_length:
        return Encoded(tuple(ids), False, n)
    return Encoded(tuple(ids[n - max_length :]), True, n)


# What can be scored: a conversation, a text already rendered with the chat template, or its token ids.
ModelInput = Conversation | str | TokenIds


def encode(tokenizer: PreTrainedTokenizerBase, items: Sequence[ModelInput], max_length: int) -> list[Encoded]:
    """Render conversations, tokenize texts (token ids pass through), then apply the length rule."""
    out: list[Encoded | None] = [None] * len(items)
    texts: list[tuple[int, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, TokenIds):
            out[i] = cut_to_length(item.ids, max_length)
        else:
            texts.append((i, item if isinstance(item, str) else render(tokenizer, item)))
    if texts:
        batch = tokenizer([text for _, text in texts], add_special_tokens=False)["input_ids"]
        for (i, _), ids in zip(texts, batch, strict=True):
            out[i] = cut_to_length(ids, max_length)
    return [e for e in out if e is not None]


def build_examples(
    records: Sequence[LabelledRecord],
    tokenizer: PreTrainedTokenizerBase,
    axis_keys: Sequence[str],
    max_length: int,
    *,
    chunk: int = 256,
) -> list[Example]:
    """Examples with per-axis level distributions in ``axis_keys`` order; records without any label are dropped."""
    examples: list[Example] = []
    for start in range(0, len(records), chunk):
        part = records[start : start + chunk]
        encoded = encode(tokenizer, [r.conversation for r in part], max_length)
        for record, enc in zip(part, encoded, strict=True):
            targets = tuple(level_distribution(record.scores[a]) if record.scores.get(a) else None for a in axis_keys)
            if all(t is None for t in targets):
                continue
            examples.append(Example(enc.input_ids, targets, record.group_key, enc.truncated, record.id))
    return examples


# ---------------------------------------------------------------------------------------------- split


def split_of(group: str, settings: SplitSettings) -> str:
    """ "train", "val" or "test" for a prompt, from its hash alone: stable as the data set grows."""
    digest = hashlib.sha256(f"{settings.seed}:{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < settings.test_fraction:
        return "test"
    if u < settings.test_fraction + settings.val_fraction:
        return "val"
    return "train"


def split_by_prompt(examples: Iterable[Example], settings: SplitSettings) -> Splits:
    """Train/validation/test by prompt: all rollouts of one prompt land in the same split."""
    splits = Splits()
    for example in examples:
        getattr(splits, split_of(example.group, settings)).append(example)
    return splits
