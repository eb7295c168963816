"""Finding JSON objects in free text, with the character offsets of every value.

A judge's answer may hold JSON in a Markdown fence, with prose around it, or several objects; this strict
reader finds each top-level object and remembers where every value sits, so that
:mod:`judge.backends.openai.logprobs` can find a score's token.
"""

from __future__ import annotations

import json.decoder
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

_WHITESPACE = " \t\n\r"
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_MAX_DEPTH = 64
# The C string scanner behind json.loads; typeshed does not declare it.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


@dataclass
class JsonNode:
    """One JSON value and the span ``[start, end)`` it occupies in the text."""

    kind: str  # object | array | string | number | true | false | null
    start: int
    end: int
    value: Any = None
    members: dict[str, JsonNode] = field(default_factory=dict)
    items: list[JsonNode] = field(default_factory=list)


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

    def value(self, i: int, depth: int) -> JsonNode:
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
                return JsonNode(literal, i, i + len(literal), value)
        match = _NUMBER.match(self.text, i)
        if match is None:
            raise _Invalid
        raw = match.group()
        number: float = float(raw) if any(c in raw for c in ".eE") else int(raw)
        return JsonNode("number", i, match.end(), number)

    def string(self, i: int) -> JsonNode:
        try:
            value, end = _scanstring(self.text, i + 1, True)
        except ValueError:
            raise _Invalid from None
        return JsonNode("string", i, end, value)

    def object(self, i: int, depth: int) -> JsonNode:
        node = JsonNode("object", i, i)
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

    def array(self, i: int, depth: int) -> JsonNode:
        node = JsonNode("array", i, i)
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


def objects_in(text: str) -> Iterator[JsonNode]:
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


def _children(node: JsonNode) -> Iterable[JsonNode]:
    return node.members.values() if node.kind == "object" else node.items


def outermost(
    node: JsonNode, shape: Callable[[JsonNode], dict[str, JsonNode] | None]
) -> Iterator[tuple[JsonNode, dict[str, JsonNode]]]:
    """(holder, members) of the objects in ``node`` that ``shape`` accepts, outermost first, in document order.

    Once an object has the shape, nothing inside it is looked at (single and group answers alike).
    """
    found = shape(node)
    if found is not None:
        yield node, found
        return
    for child in _children(node):
        yield from outermost(child, shape)


def walk(node: JsonNode) -> Iterator[JsonNode]:
    """``node`` and every value inside it, at any depth."""
    yield node
    for child in _children(node):
        yield from walk(child)


def decoded(node: JsonNode) -> Any:
    """The decoded JSON value of a node."""
    if node.kind == "object":
        return {key: decoded(member) for key, member in node.members.items()}
    if node.kind == "array":
        return [decoded(item) for item in node.items]
    return node.value


def canonical(value: Any) -> bytes:
    """A decoded JSON value as bytes that are equal exactly when the values are (keys sorted)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
