"""Tolerant parsing of a judge's answer into per-axis scores.

Accepts plain JSON, JSON in a Markdown fence, JSON with prose before or after it, and answers with several
JSON objects. Which object is the verdict (issue 9: a quoted verdict must not replace the judge's own):

- an object that also appears in the judged texts (``quoted``: the prompt's fenced texts) is never the
  verdict, however the judge came to write it (quoting it, echoing it, re-spacing it);
- a complete object (every axis scored) wins over partial ones, wherever they stand;
- several complete objects that disagree are a parse error (the repair call asks again), never a guess;
  complete objects that agree give the last one; with no complete object, the last partial one is taken.

A score must be an integer 1..5 (``4``, ``4.0`` or ``"4"``); anything else is an error for that axis,
never clamped. Character offsets of each score are kept so that :mod:`judge.backends.openai.logprobs` can
find the score token.
"""

from __future__ import annotations

import json.decoder
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

_WHITESPACE = " \t\n\r"
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_SCORE_STRING = re.compile(r"\s*([1-5])(?:\.0+)?\s*")
_MAX_DEPTH = 64
NO_OBJECT = "no JSON object with the expected shape in the answer"
DISAGREE = "the answer holds complete verdicts that disagree; give exactly one"
# The C string scanner behind json.loads; typeshed does not declare it.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AxisParse:
    """One axis of a parsed answer: a score, or the reason there is none."""

    score: int | None = None
    rationale: str | None = None
    error: str | None = None
    # Offset, in the parsed text, of the score's digit.
    score_offset: int | None = None

    @property
    def ok(self) -> bool:
        return self.score is not None


@dataclass(frozen=True)
class ParseResult:
    axes: dict[str, AxisParse]
    # Answer-level problem (no object of the expected shape); per-axis problems are in ``axes``.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return all(axis.ok for axis in self.axes.values())

    @property
    def failed(self) -> list[str]:
        return [key for key, axis in self.axes.items() if not axis.ok]

    def error_summary(self) -> str:
        if self.error is not None:
            return self.error
        return "; ".join(f"{key}: {axis.error}" for key, axis in self.axes.items() if axis.error)


@dataclass
class _Node:
    kind: str  # object | array | string | number | true | false | null
    start: int
    end: int
    value: Any = None
    members: dict[str, _Node] = field(default_factory=dict)
    items: list[_Node] = field(default_factory=list)


class _Invalid(Exception):
    pass


class _Reader:
    """A strict JSON reader that remembers where every value sits in the text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def skip(self, i: int) -> int:
        text = self.text
        while i < len(text) and text[i] in _WHITESPACE:
            i += 1
        return i

    def value(self, i: int, depth: int) -> _Node:
        if depth > _MAX_DEPTH or i >= len(self.text):
            raise _Invalid
        char = self.text[i]
        if char == "{":
            return self.object(i, depth)
        if char == "[":
            return self.array(i, depth)
        if char == '"':
            return self.string(i)
        for literal, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(literal, i):
                return _Node(literal, i, i + len(literal), value)
        match = _NUMBER.match(self.text, i)
        if match is None:
            raise _Invalid
        raw = match.group()
        number: float = float(raw) if any(c in raw for c in ".eE") else int(raw)
        return _Node("number", i, match.end(), number)

    def string(self, i: int) -> _Node:
        try:
            value, end = _scanstring(self.text, i + 1, True)
        except ValueError:
            raise _Invalid from None
        return _Node("string", i, end, value)

    def object(self, i: int, depth: int) -> _Node:
        node = _Node("object", i, i)
        i = self.skip(i + 1)
        if i < len(self.text) and self.text[i] == "}":
            node.end = i + 1
            return node
        while True:
            if i >= len(self.text) or self.text[i] != '"':
                raise _Invalid
            key = self.string(i)
            i = self.skip(key.end)
            if i >= len(self.text) or self.text[i] != ":":
                raise _Invalid
            member = self.value(self.skip(i + 1), depth + 1)
            node.members[key.value] = member
            i = self.skip(member.end)
            if i < len(self.text) and self.text[i] == ",":
                i = self.skip(i + 1)
                continue
            if i < len(self.text) and self.text[i] == "}":
                node.end = i + 1
                return node
            raise _Invalid

    def array(self, i: int, depth: int) -> _Node:
        node = _Node("array", i, i)
        i = self.skip(i + 1)
        if i < len(self.text) and self.text[i] == "]":
            node.end = i + 1
            return node
        while True:
            item = self.value(i, depth + 1)
            node.items.append(item)
            i = self.skip(item.end)
            if i < len(self.text) and self.text[i] == ",":
                i = self.skip(i + 1)
                continue
            if i < len(self.text) and self.text[i] == "]":
                node.end = i + 1
                return node
            raise _Invalid


def _objects(text: str) -> Iterator[_Node]:
    """Every top-level JSON object embedded in ``text``, in order."""
    reader = _Reader(text)
    i = text.find("{")
    while i != -1:
        try:
            node = reader.object(i, 0)
        except _Invalid:
            i = text.find("{", i + 1)
            continue
        yield node
        i = text.find("{", node.end)


def _axes_of(node: _Node, axis_keys: Sequence[str]) -> dict[str, _Node] | None:
    """The axis members of ``node`` if it has the expected shape: ``{"axes": {...}}`` or the axes themselves."""
    if node.kind != "object":
        return None
    axes = node.members.get("axes")
    if axes is not None and axes.kind == "object":
        return axes.members
    if any(key in node.members for key in axis_keys):
        return node.members
    return None


def _outermost(
    node: _Node, shape: Callable[[_Node], dict[str, _Node] | None]
) -> Iterator[tuple[_Node, dict[str, _Node]]]:
    """(holder, members) of the objects in ``node`` that ``shape`` accepts, outermost first, in document order.

    Once an object has the shape, nothing inside it is looked at (single and group answers alike).
    """
    found = shape(node)
    if found is not None:
        yield node, found
        return
    children = node.members.values() if node.kind == "object" else node.items
    for child in children:
        yield from _outermost(child, shape)


def _shaped(node: _Node, axis_keys: Sequence[str]) -> Iterator[tuple[_Node, dict[str, _Node]]]:
    """(holder, axes) of the objects of the expected shape in ``node``, outermost first and in document order."""
    return _outermost(node, lambda candidate: _axes_of(candidate, axis_keys))


def _value(node: _Node) -> Any:
    """The decoded JSON value of a node."""
    if node.kind == "object":
        return {key: _value(member) for key, member in node.members.items()}
    if node.kind == "array":
        return [_value(item) for item in node.items]
    return node.value


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _walk(node: _Node) -> Iterator[_Node]:
    yield node
    for child in node.members.values() if node.kind == "object" else node.items:
        yield from _walk(child)


def quoted_objects(texts: Sequence[str]) -> frozenset[bytes]:
    """Canonical JSON of every object (at any depth) written in ``texts``: none of them may be the verdict."""
    found: set[bytes] = set()
    for text in texts:
        if "{" not in text:
            continue
        for obj in _objects(text):
            for node in _walk(obj):
                if node.kind == "object":
                    found.add(_canonical(_value(node)))
    return frozenset(found)


def _is_quoted(forbidden: frozenset[bytes], *nodes: _Node) -> bool:
    return bool(forbidden) and any(_canonical(_value(node)) in forbidden for node in nodes)


_Result = TypeVar("_Result", "ParseResult", "GroupParseResult")


def _choose(results: list[_Result], scores: Callable[[_Result], object]) -> _Result | None:
    """The verdict among parsed candidates (at least one, document order): see the module docstring.

    The last complete one when every complete one has the same ``scores``; with none complete, the last one;
    None when complete ones disagree (the caller words that error for its kind of answer).
    """
    complete = [result for result in results if result.ok]
    if not complete:
        return results[-1]
    first = scores(complete[0])
    if any(scores(other) != first for other in complete[1:]):
        return None
    return complete[-1]


def _all_failed(axis_keys: Iterable[str], error: str) -> ParseResult:
    """A result whose every axis failed for one answer-level ``error``."""
    return ParseResult(axes={key: AxisParse(error=error) for key in axis_keys}, error=error)


def _scores(result: ParseResult) -> dict[str, int | None]:
    return {key: axis.score for key, axis in result.axes.items()}


def _score(node: _Node, text: str) -> tuple[int | None, int | None, str | None]:
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


def _axis(key: str, node: _Node | None, text: str) -> AxisParse:
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


def parse_scores(
    text: str, axis_keys: Sequence[str], *, offsets: bool = True, quoted: frozenset[bytes] = frozenset()
) -> ParseResult:
    """Parse a judge's answer into a score (or an error) for each of ``axis_keys``.

    ``quoted``: :func:`quoted_objects` of the prompt's fenced texts, never taken as the verdict.
    ``offsets=False`` (no logprobs to align) lets an answer that is plain JSON be decoded by orjson, about
    20x faster than the offset-keeping reader; everything else goes through the tolerant reader.
    """
    if not offsets:
        plain = _plain_single(text, axis_keys, quoted)
        if plain is not None:
            return plain
    candidates: list[ParseResult] = []
    for obj in _objects(text):
        for holder, axes in _shaped(obj, axis_keys):
            if _is_quoted(quoted, obj, holder):
                continue
            candidates.append(ParseResult(axes={key: _axis(key, axes.get(key), text) for key in axis_keys}))
    if not candidates:
        return _all_failed(axis_keys, NO_OBJECT)
    chosen = _choose(candidates, _scores)
    return chosen if chosen is not None else _all_failed(axis_keys, DISAGREE)


@dataclass(frozen=True)
class GroupParseResult:
    """A group answer: one :class:`ParseResult` per candidate label."""

    candidates: dict[str, ParseResult]
    # Answer-level problem (no object of the expected shape); per-candidate problems are in ``candidates``.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.candidates.values())

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(label, axis) pairs without a score."""
        return [(label, key) for label, result in self.candidates.items() for key in result.failed]

    def error_summary(self) -> str:
        if self.error is not None:
            return self.error
        return "; ".join(
            f"{label}.{key}: {axis.error}"
            for label, result in self.candidates.items()
            for key, axis in result.axes.items()
            if axis.error
        )


NO_GROUP_OBJECT = 'no JSON object with the expected shape ({"responses": {label: {axis: …}}}) in the answer'


def _candidates_of(node: _Node, labels: Sequence[str], axis_keys: Sequence[str]) -> dict[str, _Node] | None:
    """The candidate members of ``node`` if it is a group answer: ``{"responses": {...}}``, or labels at the top.

    Bare labels count only when one of them holds an axis key, so that a stray ``{"A": 1}`` is not an answer.
    """
    if node.kind != "object":
        return None
    responses = node.members.get("responses")
    if responses is not None and responses.kind == "object":
        return responses.members
    for label in labels:
        member = node.members.get(label)
        if member is not None and _axes_of(member, axis_keys) is not None:
            return node.members
    return None


def _shaped_groups(
    node: _Node, labels: Sequence[str], axis_keys: Sequence[str]
) -> Iterator[tuple[_Node, dict[str, _Node]]]:
    """(holder, candidates) of the group answers in ``node``, outermost first and in document order."""
    return _outermost(node, lambda candidate: _candidates_of(candidate, labels, axis_keys))


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


def _plain_axes(candidate: dict[str, Any], axis_keys: Sequence[str]) -> dict[str, AxisParse]:
    """Each axis of an already decoded axes object, with the tolerant reader's rules and messages."""
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


def _plain_single(text: str, axis_keys: Sequence[str], quoted: frozenset[bytes] = frozenset()) -> ParseResult | None:
    """The fast path of :func:`parse_scores` for an answer that is exactly one ``{"axes": {...}}`` object.

    Structured output makes that the usual case; anything else (prose, fences, several objects, another
    shape) returns None and goes through the tolerant reader. Gives no score offsets.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    axes = data.get("axes") if isinstance(data, dict) else None
    if not isinstance(axes, dict) or not any(key in axes for key in axis_keys):
        return None
    if quoted and (_canonical(data) in quoted or _canonical(axes) in quoted):
        return None  # an echoed quote: the tolerant reader words the error
    return ParseResult(axes=_plain_axes(axes, axis_keys))


def _plain_group(
    text: str, labels: Sequence[str], axis_keys: Sequence[str], quoted: frozenset[bytes] = frozenset()
) -> GroupParseResult | None:
    """The fast path of :func:`parse_group_scores` for an answer that is exactly one well-formed group object.

    Structured output makes that the usual case; anything else (prose, fences, several objects, another
    shape) returns None and goes through the tolerant reader. Gives no score offsets.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    responses = data.get("responses") if isinstance(data, dict) else None
    if not isinstance(responses, dict):
        return None
    if quoted and (_canonical(data) in quoted or _canonical(responses) in quoted):
        return None
    results: dict[str, ParseResult] = {}
    for label in labels:
        candidate = responses.get(label)
        if isinstance(candidate, dict) and isinstance(candidate.get("axes"), dict):
            candidate = candidate["axes"]
        if not isinstance(candidate, dict) or not any(key in candidate for key in axis_keys):
            return None  # a missing or odd candidate: let the tolerant reader word the error
        results[label] = ParseResult(axes=_plain_axes(candidate, axis_keys))
    return GroupParseResult(candidates=results)


def parse_group_scores(
    text: str,
    labels: Sequence[str],
    axis_keys: Sequence[str],
    *,
    offsets: bool = True,
    quoted: frozenset[bytes] = frozenset(),
) -> GroupParseResult:
    """Parse a group answer into a score (or an error) for each candidate label and axis.

    The verdict is chosen as for :func:`parse_scores` (quoted objects never; complete over partial; complete
    ones that disagree are an error); a candidate's axes may sit directly under its label or under
    ``"axes"``. ``offsets=False`` (no logprobs to align) lets an answer that is plain JSON be decoded by
    orjson: a group answer is G times longer than a single one.
    """
    if not offsets:
        plain = _plain_group(text, labels, axis_keys, quoted)
        if plain is not None:
            return plain
    parsed: list[GroupParseResult] = []
    for obj in _objects(text):
        for holder, candidates in _shaped_groups(obj, labels, axis_keys):
            if _is_quoted(quoted, obj, holder):
                continue
            parsed.append(_group_result(candidates, labels, axis_keys, text))
    if not parsed:
        return GroupParseResult(
            candidates=dict.fromkeys(labels, _all_failed(axis_keys, NO_GROUP_OBJECT)), error=NO_GROUP_OBJECT
        )
    chosen = _choose(parsed, _group_scores)
    if chosen is None:
        return GroupParseResult(candidates=dict.fromkeys(labels, _all_failed(axis_keys, DISAGREE)), error=DISAGREE)
    return chosen


def _group_scores(result: GroupParseResult) -> dict[str, dict[str, int | None]]:
    return {label: _scores(r) for label, r in result.candidates.items()}


def _group_result(
    chosen: dict[str, _Node], labels: Sequence[str], axis_keys: Sequence[str], text: str
) -> GroupParseResult:
    results: dict[str, ParseResult] = {}
    for label in labels:
        node = chosen.get(label)
        axes = _axes_of(node, axis_keys) if node is not None else None
        if axes is None:
            results[label] = _all_failed(axis_keys, f"candidate {label!r} missing from the answer")
            continue
        results[label] = ParseResult(axes={key: _axis(key, axes.get(key), text) for key in axis_keys})
    return GroupParseResult(candidates=results)
