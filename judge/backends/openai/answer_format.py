"""The answer a judge must give: the JSON template shown in a prompt, the strict ``response_format`` schemas,
and the repair instructions that ask once more for a parsable answer, for single and group calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from judge.backends.openai.prompt_text import GROUP_TEXT, TEXT
from judge.profiles import RationaleMode
from rubrics.schema import Language

# Machine-readable line at the end of the output-format section: the axis keys the answer must carry,
# in order. Test servers and log readers use it; the judge reads the JSON template above it.
AXES_LINE_PREFIX = "RUBRIC_AXES:"
# Machine-readable line after RUBRIC_AXES in a group prompt: the candidate labels, in display order.
CANDIDATES_LINE_PREFIX = "RUBRIC_CANDIDATES:"
SCHEMA_NAME = "rubric_scores"
GROUP_SCHEMA_NAME = "rubric_group_scores"


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


def answer_template(axis_keys: Sequence[str], language: Language, rationale: RationaleMode = "full") -> str:
    """The JSON shape the judge must answer with, as shown in the prompt."""
    if rationale == "none":
        body = ", ".join(f'"{key}": <1-5>' for key in axis_keys)
    else:
        placeholder = TEXT[language]["rationale_brief_placeholder" if rationale == "brief" else "rationale_placeholder"]
        body = ", ".join(f'"{key}": {{"rationale": "{placeholder}", "score": <1-5>}}' for key in axis_keys)
    return f'{{"axes": {{{body}}}}}'


def repair_instruction(
    error: str, axis_keys: Sequence[str], language: Language, rationale: RationaleMode = "full"
) -> str:
    """The follow-up user message that asks once more for a parsable answer."""
    return TEXT[language]["repair_none" if rationale == "none" else "repair"].format(
        error=error, template=answer_template(axis_keys, language, rationale), keys=", ".join(axis_keys)
    )


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
