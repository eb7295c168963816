"""Which JSON object in a judge's answer is the verdict (issue 9: a quoted verdict must not replace the judge's own).

- an object that also appears in the judged texts (``quoted``: the prompt's fenced texts) is never the
  verdict, however the judge came to write it (quoting it, echoing it, re-spacing it);
- a complete object (every axis scored) wins over partial ones, wherever they stand;
- several complete objects that disagree are a parse error (the repair call asks again), never a guess;
  complete objects that agree give the last one; with no complete object, the last partial one is taken.

Single-sample and group answers share these rules; they differ only in the shape of a verdict and how one
is read, which :mod:`.single_answer` and :mod:`.group_answer` pass in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from judge.backends.openai.json_objects import JsonNode, canonical, decoded, objects_in, outermost, walk
from judge.backends.openai.parse_results import DISAGREE, GroupParseResult, ParseResult

_Result = TypeVar("_Result", ParseResult, GroupParseResult)


def quoted_objects(texts: Sequence[str]) -> frozenset[bytes]:
    """Canonical JSON of every object (at any depth) written in ``texts``: none of them may be the verdict."""
    found: set[bytes] = set()
    for text in texts:
        if "{" not in text:
            continue
        for obj in objects_in(text):
            for node in walk(obj):
                if node.kind == "object":
                    found.add(canonical(decoded(node)))
    return frozenset(found)


def _is_quoted(forbidden: frozenset[bytes], *nodes: JsonNode) -> bool:
    return bool(forbidden) and any(canonical(decoded(node)) in forbidden for node in nodes)


def _choose(results: list[_Result], scores: Callable[[_Result], object]) -> _Result | None:
    """The verdict among parsed candidates (at least one, document order): see the module docstring.

    The last complete one when every complete one has the same ``scores``; with none complete, the last one;
    None when complete ones disagree.
    """
    complete = [result for result in results if result.ok]
    if not complete:
        return results[-1]
    first = scores(complete[0])
    if any(scores(other) != first for other in complete[1:]):
        return None
    return complete[-1]


def choose_verdict(
    text: str,
    *,
    shape: Callable[[JsonNode], dict[str, JsonNode] | None],
    read: Callable[[dict[str, JsonNode]], _Result],
    scores: Callable[[_Result], object],
    failed: Callable[[str], _Result],
    no_object: str,
    quoted: frozenset[bytes],
) -> _Result:
    """The verdict in ``text`` by the module's rules, through the tolerant reader.

    ``shape`` gives the members of an object that has a verdict's shape (else None), ``read`` parses those
    members, ``scores`` is what two complete verdicts must share to agree, and ``failed`` words an
    answer-level error (``no_object`` when nothing has the shape, :data:`DISAGREE`).
    """
    candidates: list[_Result] = []
    for obj in objects_in(text):
        for holder, members in outermost(obj, shape):
            if _is_quoted(quoted, obj, holder):
                continue
            candidates.append(read(members))
    if not candidates:
        return failed(no_object)
    chosen = _choose(candidates, scores)
    return chosen if chosen is not None else failed(DISAGREE)


def plain_verdict(text: str, key: str, quoted: frozenset[bytes]) -> dict[str, Any] | None:
    """The object under ``key`` when ``text`` is exactly one JSON object holding one there and is not a quote.

    The orjson fast path's gate: anything else (prose, fences, several objects, another shape, an echoed
    quote) returns None and goes through :func:`choose_verdict`, which words any error.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    inner = data.get(key) if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        return None
    if quoted and (canonical(data) in quoted or canonical(inner) in quoted):
        return None
    return inner
