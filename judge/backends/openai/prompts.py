"""Judge prompts: the rubric, the fenced conversation and judged turn, and the output format.

Layout (cache-friendly): everything that is the same for every sample of one rubric and profile comes first
and is byte-identical from request to request (the system message, the rubric section, the output format;
see :mod:`judge.backends.openai.static_prefix`), so that provider prefix caches (OpenAI, DeepSeek, vLLM and
SGLang prefix caching) serve it at a fraction of the price. Then the per-request nonce, the fenced
conversation and judged turn (:mod:`judge.backends.openai.fences`), and a short closing reminder with the
machine-readable axes line. Group prompts live in :mod:`judge.backends.openai.group_prompts`, the answer
schemas and repair instructions in :mod:`judge.backends.openai.answer_format`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from judge.backends.openai.fences import ROLE_LABELS, fence, new_nonce
from judge.backends.openai.prompt_text import TEXT
from judge.backends.openai.static_prefix import closing_section, static_section
from judge.profiles import JudgeProfile, RationaleMode
from judge.samples import Sample
from rubrics.schema import Language, Rubric


@dataclass(frozen=True)
class RenderedPrompt:
    """One judge request: system and user text, the axes it asks for, and the fence nonce."""

    system: str
    user: str
    axis_keys: tuple[str, ...]
    nonce: str
    language: Language
    # The texts inside its fences (what others wrote): JSON objects quoted there are never the verdict.
    fenced: tuple[str, ...]
    rationale: RationaleMode = "full"
    # The start of ``user`` that every sample of this rubric, axes, language and rationale mode shares (the same
    # string object each time): the judge serialises it once, not once per request.
    static_prefix: str = ""

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def prompt_language(profile: JudgeProfile, rubric: Rubric) -> Language:
    return profile.language or rubric.language


def render_prompt(
    sample: Sample,
    rubric: Rubric,
    *,
    language: Language,
    axis_keys: Sequence[str] | None = None,
    nonce: str | None = None,
    rationale: RationaleMode = "full",
    include_reasoning: bool = True,
) -> RenderedPrompt:
    """Render one judge request for ``axis_keys`` (default: every axis of the rubric, in rubric order).

    The system message and the user message up to the nonce are the same for every sample of one rubric,
    axes, language and rationale mode (see the module docstring). ``include_reasoning=False`` withholds the
    CoT (axes judged on the response alone).
    """
    keys = tuple(axis_keys) if axis_keys is not None else tuple(rubric.axis_keys)
    nonce = nonce or new_nonce()
    text = TEXT[language]

    static = static_section(rubric, language, keys, rationale)
    parts = [static, text["markers"].format(nonce=nonce)]
    fenced = [message.content for message in sample.messages]
    parts.append(text["conversation"])
    for i, message in enumerate(sample.messages, start=1):
        parts.append(text["turn"].format(i=i, who=text[f"who_{message.role}"]))
        parts.append(fence(message.content, ROLE_LABELS[message.role], nonce))
    parts.append(text["judged"])
    if sample.clipped:
        parts.append(text["clipped"])
    parts.append(text["reasoning"])
    if not include_reasoning:
        parts.append(text["reasoning_withheld"])
    else:
        parts.append(fence(sample.reasoning, "REASONING", nonce) if sample.reasoning else text["no_reasoning"])
        fenced.append(sample.reasoning)
    parts.append(text["response"])
    parts.append(fence(sample.response, "RESPONSE", nonce) if sample.response else text["no_response"])
    fenced.append(sample.response)
    if sample.reference:
        parts.append(text["reference"])
        parts.append(fence(sample.reference, "REFERENCE", nonce))
        fenced.append(sample.reference)
    parts.append(closing_section(language, keys))

    return RenderedPrompt(
        system=text["system"],
        user="\n\n".join(parts),
        axis_keys=keys,
        nonce=nonce,
        language=language,
        fenced=tuple(text for text in fenced if text),
        rationale=rationale,
        static_prefix=static,
    )


def response_only_axes(rubric: Rubric) -> set[str]:
    """Axes of the rubric's ``judging.response_only_layers``: judged on the response alone, without the CoT."""
    alone = set(rubric.judging.response_only_layers)
    return {axis.key for axis in rubric.axes if axis.layer in alone}


def prompt_axis_sets(rubric: Rubric, mode: str) -> list[tuple[str, ...]]:
    """The axes of each call a mode makes for one sample: all (joint, group), one layer each, one axis each.

    Response-only axes (:func:`response_only_axes`) get calls of their own: a joint (or group) call is split in
    two, the CoT's axes and the response-only ones.
    """
    if mode == "isolated":
        return [(key,) for key in rubric.axis_keys]
    if mode == "layered":
        sets = [tuple(a.key for a in rubric.axes if a.layer == layer.key) for layer in rubric.layers]
    else:
        sets = [tuple(rubric.axis_keys)]
    alone = response_only_axes(rubric)
    split: list[tuple[str, ...]] = []
    for keys in sets:
        split.append(tuple(k for k in keys if k not in alone))
        split.append(tuple(k for k in keys if k in alone))
    return [keys for keys in split if keys]


def render_prompts(
    sample: Sample, rubric: Rubric, profile: JudgeProfile, *, nonce: str | None = None
) -> list[RenderedPrompt]:
    """The requests a profile makes for one sample: one for all axes (joint, and group profiles judging one
    sample), one per rubric layer (layered), or one per axis (isolated); response-only axes apart
    (:func:`prompt_calls`)."""
    language = prompt_language(profile, rubric)
    nonce = nonce or new_nonce()
    return [
        render_prompt(
            sample,
            rubric,
            language=language,
            axis_keys=keys,
            nonce=nonce,
            rationale=profile.rationale,
            include_reasoning=include_reasoning,
        )
        for keys, include_reasoning in prompt_calls(rubric, profile.mode)
    ]


_CALLS: dict[tuple[str, str], list[tuple[tuple[str, ...], bool]]] = {}


def prompt_calls(rubric: Rubric, mode: str) -> list[tuple[tuple[str, ...], bool]]:
    """Each call's axes and whether it shows the CoT, once per rubric content and mode (not per sample).

    Group mode splits as joint does: a group judgement is two group calls for a rubric with response-only layers.
    """
    key = (rubric.content_hash, mode)
    calls = _CALLS.get(key)
    if calls is None:
        # Axes of the rubric's response-only layers are judged without the CoT (prompt_axis_sets keeps them apart).
        alone = response_only_axes(rubric)
        calls = _CALLS[key] = [(keys, not set(keys) <= alone) for keys in prompt_axis_sets(rubric, mode)]
    return calls
