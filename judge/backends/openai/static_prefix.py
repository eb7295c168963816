"""The cache-friendly start of a judge prompt: the rubric section and the output format, and the closing tail.

These parts are the same for every sample of one rubric, language, axes and rationale mode, so they are
built once and kept, and they come first in the user message, byte-identical from request to request, so
that provider prefix caches serve them at a fraction of the price.
"""

from __future__ import annotations

from collections.abc import Callable

from judge.backends.openai.answer_format import AXES_LINE_PREFIX, answer_template, group_answer_template
from judge.backends.openai.prompt_text import GROUP_TEXT, TEXT
from judge.profiles import RationaleMode
from rubrics.schema import Axis, Language, Rubric


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


def static_section(rubric: Rubric, language: Language, keys: tuple[str, ...], rationale: RationaleMode) -> str:
    """The start of the user message: the rubric and the output format, the same for every sample."""

    def build() -> str:
        return f"{_rubric_section(rubric, language, keys)}\n\n{_format_section(language, keys, rationale)}"

    return _cached(("static", f"{rubric.content_hash}:{rationale}", language, keys), build)


def closing_section(language: Language, keys: tuple[str, ...]) -> str:
    """The end of the user message: the closing reminder and the machine-readable axes line."""

    def build() -> str:
        return f"{TEXT[language]['tail']}\n\n{AXES_LINE_PREFIX} {','.join(keys)}"

    return _cached(("tail", "", language, keys), build)


def _group_format_section(
    language: Language, labels: tuple[str, ...], keys: tuple[str, ...], rationale: RationaleMode
) -> str:
    template = group_answer_template(labels, keys, language, rationale)
    name = "format_none" if rationale == "none" else "format"
    return GROUP_TEXT[language][name].format(labels=", ".join(labels), template=template, keys=", ".join(keys))


def group_static_section(
    rubric: Rubric, language: Language, labels: tuple[str, ...], keys: tuple[str, ...], rationale: RationaleMode
) -> str:
    """The start of a group prompt's user message: the same for every group of one size."""

    def build() -> str:
        return (
            f"{_rubric_section(rubric, language, keys)}\n\n{_group_format_section(language, labels, keys, rationale)}"
        )

    return _cached(("group", f"{rubric.content_hash}:{rationale}:{','.join(labels)}", language, keys), build)
