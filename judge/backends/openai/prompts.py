"""Judge prompts: the rubric, the fenced conversation and judged turn, and the output format.

Layout (cache-friendly): everything that is the same for every sample of one rubric and profile comes first
and is byte-identical from request to request (the system message, the rubric section, the output format),
so that provider prefix caches (OpenAI, DeepSeek, vLLM and SGLang prefix caching) serve it at a fraction of
the price. Then the per-request nonce, the fenced conversation and judged turn, and a short closing reminder
with the machine-readable axes line.

Every text written by someone other than us (patient turns, earlier assistant turns, the judged CoT and
response, the reference) is put inside a fence whose markers carry a per-request random nonce
(``<<<RESPONSE_1f3a…>>>`` … ``<<<END_RESPONSE_1f3a…>>>``). Runs of three or more ``<`` or ``>`` inside a
fenced text are replaced by look-alike guillemets, so a judged text can neither close its fence nor open
a fake one, whatever nonce it guesses; the system prompt tells the judge that fenced content is data.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from judge.backends.openai.prompt_text import GROUP_TEXT, TEXT
from judge.profiles import JudgeProfile, RationaleMode
from judge.samples import Sample
from rubrics.schema import Axis, Language, Rubric

# Machine-readable line at the end of the output-format section: the axis keys the answer must carry,
# in order. Test servers and log readers use it; the judge reads the JSON template above it.
AXES_LINE_PREFIX = "RUBRIC_AXES:"
SCHEMA_NAME = "rubric_scores"

_FENCE_RUN_OPEN = re.compile(r"<{3,}")
_FENCE_RUN_CLOSE = re.compile(r">{3,}")
# A fence as rendered here; the backreferences make the closing marker match its own opening one.
FENCE_PATTERN = re.compile(r"<<<([A-Z_]+)_([0-9a-f]{8,})>>>\n(.*?)\n<<<END_\1_\2>>>", re.DOTALL)


@dataclass(frozen=True)
class RenderedPrompt:
    """One judge request: system and user text, the axes it asks for, and the fence nonce."""

    system: str
    user: str
    axis_keys: tuple[str, ...]
    nonce: str
    language: Language
    rationale: RationaleMode = "full"

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def new_nonce() -> str:
    """64 random bits, hex: unguessable by the author of a judged text."""
    return secrets.token_hex(8)


def neutralise(text: str) -> str:
    """Make fence markers impossible inside ``text``: runs of 3+ ``<``/``>`` become ``‹``/``›``."""
    if "<<<" not in text and ">>>" not in text:
        return text  # the usual case: a substring test is ~100x cheaper than the regex scan of CJK text
    text = _FENCE_RUN_OPEN.sub(lambda m: "‹" * len(m.group()), text)
    return _FENCE_RUN_CLOSE.sub(lambda m: "›" * len(m.group()), text)


def fence(text: str, label: str, nonce: str) -> str:
    """Wrap ``text`` in nonce-carrying markers named ``label`` (upper-case letters and ``_``)."""
    return f"<<<{label}_{nonce}>>>\n{neutralise(text)}\n<<<END_{label}_{nonce}>>>"


def prompt_language(profile: JudgeProfile, rubric: Rubric) -> Language:
    return profile.language or rubric.language


def _axis_schema(rationale: RationaleMode) -> dict[str, Any]:
    score = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    if rationale == "none":
        # Scores only: the smallest answer, and nothing for the judge to write before a score.
        return score
    return {
        "type": "object",
        "properties": {
            # Order matters to grammar-constrained decoders: the rationale is written before the score.
            "rationale": {"type": "string"},
            "score": score,
        },
        "required": ["rationale", "score"],
        "additionalProperties": False,
    }


def output_json_schema(axis_keys: Sequence[str], rationale: RationaleMode = "full") -> dict[str, Any]:
    """The ``json_schema`` member of a strict ``response_format``: rationale before score, scores 1..5.

    ``rationale="none"``: each axis is a bare score.
    """
    axis_schema = _axis_schema(rationale)
    return {
        "name": SCHEMA_NAME,
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "axes": {
                    "type": "object",
                    "properties": {key: axis_schema for key in axis_keys},
                    "required": list(axis_keys),
                    "additionalProperties": False,
                }
            },
            "required": ["axes"],
            "additionalProperties": False,
        },
    }


def response_format(
    structured_output: str, axis_keys: Sequence[str], rationale: RationaleMode = "full"
) -> dict[str, Any] | None:
    """The ``response_format`` request field for a profile's ``structured_output`` (None: plain text)."""
    if structured_output == "json_schema":
        return {"type": "json_schema", "json_schema": output_json_schema(axis_keys, rationale)}
    if structured_output == "json_object":
        return {"type": "json_object"}
    return None


_ROLE_LABELS = {"system": "SYSTEM_PROMPT", "user": "PATIENT_MESSAGE", "assistant": "ASSISTANT_MESSAGE"}


def answer_template(axis_keys: Sequence[str], language: Language, rationale: RationaleMode = "full") -> str:
    """The JSON shape the judge must answer with, as shown in the prompt."""
    if rationale == "none":
        body = ", ".join(f'"{key}": <1-5>' for key in axis_keys)
    else:
        placeholder = TEXT[language]["rationale_brief_placeholder" if rationale == "brief" else "rationale_placeholder"]
        body = ", ".join(f'"{key}": {{"rationale": "{placeholder}", "score": <1-5>}}' for key in axis_keys)
    return f'{{"axes": {{{body}}}}}'


def _axis_block(index: int, axis: Axis, rubric: Rubric, language: Language) -> str:
    text = TEXT[language]
    layer = next((layer.title.get(language) for layer in rubric.layers if layer.key == axis.layer), axis.layer)
    lines = [
        text["axis"].format(
            i=index,
            title=axis.title.get(language),
            key=axis.key,
            layer=layer,
            description=axis.description.get(language),
        )
    ]
    lines += [text["anchor"].format(level=level, text=anchor.get(language)) for level, anchor in axis.anchors.items()]
    return "\n".join(lines)


# The rubric's part of a prompt is the same for every sample: built once per rubric, language and axes.
_SECTIONS: dict[tuple[str, str, Language, tuple[str, ...]], str] = {}
_MAX_SECTIONS = 1024


def _cached(key: tuple[str, str, Language, tuple[str, ...]], build: Callable[[], str]) -> str:
    section = _SECTIONS.get(key)
    if section is None:
        if len(_SECTIONS) >= _MAX_SECTIONS:
            _SECTIONS.clear()
        section = _SECTIONS[key] = build()
    return section


def _rubric_section(rubric: Rubric, language: Language, keys: tuple[str, ...]) -> str:
    def build() -> str:
        text = TEXT[language]
        header = text["rubric"].format(ref=rubric.ref, description=rubric.description.get(language), n=len(keys))
        blocks = [_axis_block(i, rubric.axis(key), rubric, language) for i, key in enumerate(keys, start=1)]
        return "\n\n".join([header, *blocks])

    return _cached(("rubric", rubric.content_hash, language, keys), build)


def _format_section(language: Language, keys: tuple[str, ...], rationale: RationaleMode) -> str:
    def build() -> str:
        name = {"full": "format", "brief": "format_brief", "none": "format_none"}[rationale]
        return TEXT[language][name].format(template=answer_template(keys, language, rationale))

    return _cached(("format", rationale, language, keys), build)


def _static_section(rubric: Rubric, language: Language, keys: tuple[str, ...], rationale: RationaleMode) -> str:
    """The start of the user message: the rubric and the output format, the same for every sample."""

    def build() -> str:
        return f"{_rubric_section(rubric, language, keys)}\n\n{_format_section(language, keys, rationale)}"

    return _cached(("static", f"{rubric.content_hash}:{rationale}", language, keys), build)


def _tail(language: Language, keys: tuple[str, ...]) -> str:
    def build() -> str:
        return f"{TEXT[language]['tail']}\n\n{AXES_LINE_PREFIX} {','.join(keys)}"

    return _cached(("tail", "", language, keys), build)


def render_prompt(
    sample: Sample,
    rubric: Rubric,
    *,
    language: Language,
    axis_keys: Sequence[str] | None = None,
    nonce: str | None = None,
    rationale: RationaleMode = "full",
) -> RenderedPrompt:
    """Render one judge request for ``axis_keys`` (default: every axis of the rubric, in rubric order).

    The system message and the user message up to the nonce are the same for every sample of one rubric,
    axes, language and rationale mode (see the module docstring).
    """
    keys = tuple(axis_keys) if axis_keys is not None else tuple(rubric.axis_keys)
    nonce = nonce or new_nonce()
    text = TEXT[language]

    parts = [_static_section(rubric, language, keys, rationale), text["markers"].format(nonce=nonce)]
    parts.append(text["conversation"])
    for i, message in enumerate(sample.messages, start=1):
        parts.append(text["turn"].format(i=i, who=text[f"who_{message.role}"]))
        parts.append(fence(message.content, _ROLE_LABELS[message.role], nonce))
    parts.append(text["judged"])
    if sample.clipped:
        parts.append(text["clipped"])
    parts.append(text["reasoning"])
    parts.append(fence(sample.reasoning, "REASONING", nonce) if sample.reasoning else text["no_reasoning"])
    parts.append(text["response"])
    parts.append(fence(sample.response, "RESPONSE", nonce) if sample.response else text["no_response"])
    if sample.reference:
        parts.append(text["reference"])
        parts.append(fence(sample.reference, "REFERENCE", nonce))
    parts.append(_tail(language, keys))

    return RenderedPrompt(
        system=text["system"],
        user="\n\n".join(parts),
        axis_keys=keys,
        nonce=nonce,
        language=language,
        rationale=rationale,
    )


def prompt_axis_sets(rubric: Rubric, mode: str) -> list[tuple[str, ...]]:
    """The axes of each call a mode makes for one sample: all (joint, group), one layer each, one axis each."""
    if mode == "isolated":
        return [(key,) for key in rubric.axis_keys]
    if mode == "layered":
        sets = [tuple(a.key for a in rubric.axes if a.layer == layer.key) for layer in rubric.layers]
        return [keys for keys in sets if keys]
    return [tuple(rubric.axis_keys)]


def render_prompts(
    sample: Sample, rubric: Rubric, profile: JudgeProfile, *, nonce: str | None = None
) -> list[RenderedPrompt]:
    """The requests a profile makes for one sample: one for all axes (joint), one per rubric layer (layered),
    or one per axis (isolated)."""
    language = prompt_language(profile, rubric)
    nonce = nonce or new_nonce()
    return [
        render_prompt(sample, rubric, language=language, axis_keys=keys, nonce=nonce, rationale=profile.rationale)
        for keys in prompt_axis_sets(rubric, profile.mode)
    ]


def repair_instruction(
    error: str, axis_keys: Sequence[str], language: Language, rationale: RationaleMode = "full"
) -> str:
    """The follow-up user message that asks once more for a parsable answer."""
    return TEXT[language]["repair_none" if rationale == "none" else "repair"].format(
        error=error, template=answer_template(axis_keys, language, rationale), keys=", ".join(axis_keys)
    )


# --- group mode: all G responses to one prompt in one call ------------------------------------------------------

# Machine-readable line after RUBRIC_AXES in a group prompt: the candidate labels, in display order.
CANDIDATES_LINE_PREFIX = "RUBRIC_CANDIDATES:"
GROUP_SCHEMA_NAME = "rubric_group_scores"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class RenderedGroupPrompt:
    """One group-mode judge request: every candidate's axes in one answer, keyed by candidate label."""

    system: str
    user: str
    axis_keys: tuple[str, ...]
    labels: tuple[str, ...]
    nonce: str
    language: Language
    rationale: RationaleMode = "full"

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def candidate_label(index: int) -> str:
    """``0 -> "A"``, ``25 -> "Z"``, ``26 -> "AA"``: letters, so a label is never mistaken for a score."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = _LETTERS[rest] + label
    return label


def group_order(hashes: Sequence[str]) -> list[int]:
    """The display order of a group's samples (indices into ``hashes``): a shuffle seeded by the group's content.

    The same set of samples is always shown in the same order, whatever order it came in, so a group's
    verdicts are reproducible and cacheable; different groups get unrelated orders, so no sample keeps
    the first position (judges favour some positions).
    """
    seed = hashlib.sha256("\x00".join(sorted(hashes)).encode()).digest()
    order = sorted(range(len(hashes)), key=lambda i: (hashes[i], i))
    random.Random(int.from_bytes(seed[:8], "big")).shuffle(order)
    return order


def output_group_json_schema(
    labels: Sequence[str], axis_keys: Sequence[str], rationale: RationaleMode = "full"
) -> dict[str, Any]:
    """The ``json_schema`` member of a strict group ``response_format``: per candidate and axis, rationale, score."""
    candidate = output_json_schema(axis_keys, rationale)["schema"]["properties"]["axes"]
    return {
        "name": GROUP_SCHEMA_NAME,
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "responses": {
                    "type": "object",
                    "properties": {label: candidate for label in labels},
                    "required": list(labels),
                    "additionalProperties": False,
                }
            },
            "required": ["responses"],
            "additionalProperties": False,
        },
    }


def group_response_format(
    structured_output: str, labels: Sequence[str], axis_keys: Sequence[str], rationale: RationaleMode = "full"
) -> dict[str, Any] | None:
    """The ``response_format`` request field of a group call (None: plain text)."""
    if structured_output == "json_schema":
        return {"type": "json_schema", "json_schema": output_group_json_schema(labels, axis_keys, rationale)}
    if structured_output == "json_object":
        return {"type": "json_object"}
    return None


def group_answer_template(
    labels: Sequence[str], axis_keys: Sequence[str], language: Language, rationale: RationaleMode = "full"
) -> str:
    """The JSON shape of a group answer: the first candidate written out, the others elided."""
    axes = answer_template(axis_keys, language, rationale)[len('{"axes": ') : -1]
    shown = f'"{labels[0]}": {axes}' if labels else ""
    more = f', "{labels[1]}": {{…}}' if len(labels) > 1 else ""
    tail = f', …, "{labels[-1]}": {{…}}' if len(labels) > 2 else ""
    return f'{{"responses": {{{shown}{more}{tail}}}}}'


def _group_format_section(
    language: Language, labels: tuple[str, ...], keys: tuple[str, ...], rationale: RationaleMode
) -> str:
    template = group_answer_template(labels, keys, language, rationale)
    name = "format_none" if rationale == "none" else "format"
    return GROUP_TEXT[language][name].format(labels=", ".join(labels), template=template, keys=", ".join(keys))


def _group_static_section(
    rubric: Rubric, language: Language, labels: tuple[str, ...], keys: tuple[str, ...], rationale: RationaleMode
) -> str:
    """The start of a group prompt's user message: the same for every group of one size."""

    def build() -> str:
        return (
            f"{_rubric_section(rubric, language, keys)}\n\n{_group_format_section(language, labels, keys, rationale)}"
        )

    return _cached(("group", f"{rubric.content_hash}:{rationale}:{','.join(labels)}", language, keys), build)


def render_group_prompt(
    samples: Sequence[Sample],
    rubric: Rubric,
    *,
    language: Language,
    nonce: str | None = None,
    rationale: RationaleMode = "full",
) -> RenderedGroupPrompt:
    """One request judging ``samples`` (responses to one conversation) together, labelled A, B, … in the given order.

    The caller chooses the order (see :func:`group_order`); the conversation and reference are the first
    sample's, which all samples of a group share. As in :func:`render_prompt`, the static part comes first.
    """
    if not samples:
        raise ValueError("a group prompt needs at least one sample")
    keys = tuple(rubric.axis_keys)
    labels = tuple(candidate_label(i) for i in range(len(samples)))
    nonce = nonce or new_nonce()
    text, group = TEXT[language], GROUP_TEXT[language]
    first = samples[0]

    parts = [_group_static_section(rubric, language, labels, keys, rationale), text["markers"].format(nonce=nonce)]
    parts.append(text["conversation"])
    for i, message in enumerate(first.messages, start=1):
        parts.append(text["turn"].format(i=i, who=text[f"who_{message.role}"]))
        parts.append(fence(message.content, _ROLE_LABELS[message.role], nonce))
    parts.append(group["judged"].format(n=len(samples)))
    for label, sample in zip(labels, samples, strict=True):
        parts.append(group["candidate"].format(label=label))
        if sample.clipped:
            parts.append(text["clipped"])
        parts.append(group["reasoning"].format(label=label))
        parts.append(fence(sample.reasoning, f"REASONING_{label}", nonce) if sample.reasoning else text["no_reasoning"])
        parts.append(group["response"].format(label=label))
        parts.append(fence(sample.response, f"RESPONSE_{label}", nonce) if sample.response else text["no_response"])
    if first.reference:
        parts.append(text["reference"])
        parts.append(fence(first.reference, "REFERENCE", nonce))
    parts.append(f"{group['tail']}\n\n{AXES_LINE_PREFIX} {','.join(keys)}\n{CANDIDATES_LINE_PREFIX} {','.join(labels)}")

    return RenderedGroupPrompt(
        system=text["system"] + group["system_extra"].format(n=len(samples)),
        user="\n\n".join(parts),
        axis_keys=keys,
        labels=labels,
        nonce=nonce,
        language=language,
        rationale=rationale,
    )


def group_repair_instruction(
    error: str, labels: Sequence[str], axis_keys: Sequence[str], language: Language, rationale: RationaleMode = "full"
) -> str:
    """The follow-up user message that asks once more for a parsable group answer."""
    return GROUP_TEXT[language]["repair_none" if rationale == "none" else "repair"].format(
        error=error,
        template=group_answer_template(labels, axis_keys, language, rationale),
        labels=", ".join(labels),
        keys=", ".join(axis_keys),
    )
