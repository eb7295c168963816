"""Group mode: all G responses to one prompt judged in one call, as labelled candidates in a content-seeded order."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from judge.backends.openai.answer_format import AXES_LINE_PREFIX, CANDIDATES_LINE_PREFIX
from judge.backends.openai.fences import ROLE_LABELS, fence, new_nonce
from judge.backends.openai.prompt_text import GROUP_TEXT, TEXT
from judge.backends.openai.prompts import prompt_calls, prompt_language
from judge.backends.openai.static_prefix import group_static_section
from judge.profiles import JudgeProfile, RationaleMode
from judge.samples import Sample
from rubrics.schema import Language, Rubric

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
    # The texts inside its fences (what others wrote): JSON objects quoted there are never the verdict.
    fenced: tuple[str, ...]
    rationale: RationaleMode = "full"
    # The start of ``user`` every group of this rubric, size, axes, language and rationale mode shares: serialised
    # once by the judge (as :class:`RenderedPrompt`'s).
    static_prefix: str = ""

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


def group_orders(hashes: Sequence[str], k: int) -> list[list[int]]:
    """Up to ``k`` distinct display orders of a group, the first being :func:`group_order`'s.

    The second is the first reversed (every sample moves as far as it can: first and last swap); further ones
    are seeded shuffles. Fewer come back when the group has fewer distinct orders (one sample: one order).
    """
    first = group_order(hashes)
    orders = [first]
    if k >= 2 and len(first) > 1:
        orders.append(first[::-1])
    seed = hashlib.sha256(("perm\x00" + "\x00".join(sorted(hashes))).encode()).digest()
    rng = random.Random(int.from_bytes(seed[:8], "big"))
    limit = math.factorial(min(len(first), 8))
    tries = 0
    while len(orders) < min(k, limit) and tries < 100:
        tries += 1
        candidate = list(first)
        rng.shuffle(candidate)
        if candidate not in orders:
            orders.append(candidate)
    return orders


def render_group_prompt(
    samples: Sequence[Sample],
    rubric: Rubric,
    *,
    language: Language,
    axis_keys: Sequence[str] | None = None,
    nonce: str | None = None,
    rationale: RationaleMode = "full",
    include_reasoning: bool = True,
) -> RenderedGroupPrompt:
    """One request judging ``samples`` (responses to one conversation) together, labelled A, B, … in the given order.

    The caller chooses the order (see :func:`group_order`); the conversation and reference are the first
    sample's, which all samples of a group share. As in :func:`render_prompt`, the static part comes first.
    ``axis_keys``: default every axis of the rubric. ``include_reasoning=False`` shows no candidate's CoT (the
    axes are judged on the responses alone), and says so once, before the candidates.
    """
    if not samples:
        raise ValueError("a group prompt needs at least one sample")
    keys = tuple(axis_keys) if axis_keys is not None else tuple(rubric.axis_keys)
    labels = tuple(candidate_label(i) for i in range(len(samples)))
    nonce = nonce or new_nonce()
    text, group = TEXT[language], GROUP_TEXT[language]
    first = samples[0]

    static = group_static_section(rubric, language, labels, keys, rationale)
    parts = [static, text["markers"].format(nonce=nonce)]
    fenced = [message.content for message in first.messages]
    parts.append(text["conversation"])
    for i, message in enumerate(first.messages, start=1):
        parts.append(text["turn"].format(i=i, who=text[f"who_{message.role}"]))
        parts.append(fence(message.content, ROLE_LABELS[message.role], nonce))
    parts.append(group["judged" if include_reasoning else "judged_response_only"].format(n=len(samples)))
    for label, sample in zip(labels, samples, strict=True):
        parts.append(group["candidate"].format(label=label))
        if sample.clipped:
            parts.append(text["clipped"])
        if include_reasoning:
            parts.append(group["reasoning"].format(label=label))
            parts.append(
                fence(sample.reasoning, f"REASONING_{label}", nonce) if sample.reasoning else text["no_reasoning"]
            )
            fenced.append(sample.reasoning)
        parts.append(group["response"].format(label=label))
        parts.append(fence(sample.response, f"RESPONSE_{label}", nonce) if sample.response else text["no_response"])
        fenced.append(sample.response)
    if first.reference:
        parts.append(text["reference"])
        parts.append(fence(first.reference, "REFERENCE", nonce))
        fenced.append(first.reference)
    parts.append(f"{group['tail']}\n\n{AXES_LINE_PREFIX} {','.join(keys)}\n{CANDIDATES_LINE_PREFIX} {','.join(labels)}")

    return RenderedGroupPrompt(
        system=text["system"] + group["system_extra"].format(n=len(samples)),
        user="\n\n".join(parts),
        axis_keys=keys,
        labels=labels,
        nonce=nonce,
        language=language,
        fenced=tuple(text for text in fenced if text),
        rationale=rationale,
        static_prefix=static,
    )


def render_group_prompts(
    samples: Sequence[Sample], rubric: Rubric, profile: JudgeProfile, *, nonce: str | None = None
) -> list[RenderedGroupPrompt]:
    """The group calls of one display order: one for every axis, or, for a rubric with response-only layers, one
    for the CoT's axes (CoTs shown) and one for the response-only axes (no CoT shown: a persuasive CoT must not
    lift a response's scores). The calls share the nonce, as a sample's calls do in :func:`render_prompts`."""
    language = prompt_language(profile, rubric)
    nonce = nonce or new_nonce()
    return [
        render_group_prompt(
            samples,
            rubric,
            language=language,
            axis_keys=keys,
            nonce=nonce,
            rationale=profile.rationale,
            include_reasoning=include_reasoning,
        )
        for keys, include_reasoning in prompt_calls(rubric, "group")
    ]
