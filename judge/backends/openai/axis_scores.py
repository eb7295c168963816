"""Reading one axis of a verdict: its score (an integer 1..5, never clamped), rationale and score offset.

Two readers with the same rules and messages: one over :class:`JsonNode` (keeps the digit's offset for
logprobs), one over an already decoded value (the orjson fast path, no offsets).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from judge.backends.openai.json_objects import JsonNode
from judge.backends.openai.parse_results import AxisParse

_SCORE_STRING = re.compile(r"\s*([1-5])(?:\.0+)?\s*")


def axes_of(node: JsonNode, axis_keys: Sequence[str]) -> dict[str, JsonNode] | None:
    """The axis members of ``node`` if it has the expected shape: ``{"axes": {...}}`` or the axes themselves."""
    if node.kind != "object":
        return None
    axes = node.members.get("axes")
    if axes is not None and axes.kind == "object":
        return axes.members
    if any(key in node.members for key in axis_keys):
        return node.members
    return None


def _score(node: JsonNode, text: str) -> tuple[int | None, int | None, str | None]:
    """(score, digit offset, error) of a score value."""
    raw = text[node.start : node.end]
    if node.kind == "number":
        number = node.value
        if (isinstance(number, int) or float(number).is_integer()) and 1 <= number <= 5:
            return int(number), node.start, None
        return None, None, f"score {raw} is not an integer from 1 to 5"
    if node.kind == "string":
        match = _SCORE_STRING.fullmatch(node.value)
        if match is not None and raw == f'"{node.value}"':
            return int(match.group(1)), node.start + 1 + match.start(1), None
        if match is not None:
            # Escapes inside the string: the score stands, its offset is not the digit's.
            return int(match.group(1)), None, None
        return None, None, f"score {raw} is not an integer from 1 to 5"
    return None, None, f"score {raw} is not an integer from 1 to 5"


def _axis(key: str, node: JsonNode | None, text: str) -> AxisParse:
    if node is None:
        return AxisParse(error=f"axis {key!r} missing from the answer")
    rationale = None
    score_node = node
    if node.kind == "object":
        rationale_node = node.members.get("rationale")
        if rationale_node is not None and rationale_node.kind == "string":
            rationale = rationale_node.value
        found = node.members.get("score")
        if found is None:
            return AxisParse(rationale=rationale, error=f"axis {key!r} has no score")
        score_node = found
    score, offset, error = _score(score_node, text)
    if error is not None:
        return AxisParse(rationale=rationale, error=f"axis {key!r}: {error}")
    return AxisParse(score=score, rationale=rationale, score_offset=offset)


def node_axes(axes: dict[str, JsonNode], axis_keys: Sequence[str], text: str) -> dict[str, AxisParse]:
    """Each axis of an axes object read from ``text``, with the offset of its score's digit."""
    return {key: _axis(key, axes.get(key), text) for key in axis_keys}


def _plain_score(value: Any) -> tuple[int | None, str | None]:
    """:func:`_score` for an already decoded JSON value (no offsets)."""
    if isinstance(value, bool):
        return None, f"score {str(value).lower()} is not an integer from 1 to 5"
    if isinstance(value, int | float) and float(value).is_integer() and 1 <= value <= 5:
        return int(value), None
    if isinstance(value, str):
        match = _SCORE_STRING.fullmatch(value)
        if match is not None:
            return int(match.group(1)), None
    return None, f"score {orjson.dumps(value).decode()} is not an integer from 1 to 5"


def decoded_axes(candidate: dict[str, Any], axis_keys: Sequence[str]) -> dict[str, AxisParse]:
    """Each axis of an already decoded axes object, with the node reader's rules and messages."""
    axes: dict[str, AxisParse] = {}
    for key in axis_keys:
        axis = candidate.get(key)
        if axis is None:
            axes[key] = AxisParse(error=f"axis {key!r} missing from the answer")
            continue
        rationale = None
        value = axis
        if isinstance(axis, dict):
            rationale = axis.get("rationale") if isinstance(axis.get("rationale"), str) else None
            if "score" not in axis:
                axes[key] = AxisParse(rationale=rationale, error=f"axis {key!r} has no score")
                continue
            value = axis["score"]
        score, error = _plain_score(value)
        axes[key] = AxisParse(score=score, rationale=rationale, error=f"axis {key!r}: {error}" if error else None)
    return axes
