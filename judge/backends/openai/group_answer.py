"""Parsing a group answer (G candidates judged in one call) into a score (or an error) per label and axis.

The verdict is chosen by :mod:`.verdict`'s rules, as for a single answer; a candidate's axes may sit
directly under its label or under ``"axes"``.
"""

from __future__ import annotations

from collections.abc import Sequence

from judge.backends.openai.axis_scores import axes_of, decoded_axes, node_axes
from judge.backends.openai.json_objects import JsonNode
from judge.backends.openai.parse_results import (
    NO_GROUP_OBJECT,
    GroupParseResult,
    ParseResult,
    all_failed,
    group_failed,
    scores_by_axis,
)
from judge.backends.openai.verdict import choose_verdict, plain_verdict


def parse_group_scores(
    text: str,
    labels: Sequence[str],
    axis_keys: Sequence[str],
    *,
    offsets: bool = True,
    quoted: frozenset[bytes] = frozenset(),
) -> GroupParseResult:
    """Parse a group answer into a score (or an error) for each candidate label and axis.

    The verdict is chosen as for :func:`~judge.backends.openai.single_answer.parse_scores` (quoted objects
    never; complete over partial; complete ones that disagree are an error). ``offsets=False`` (no logprobs
    to align) lets an answer that is plain JSON be decoded by orjson: a group answer is G times longer than
    a single one.
    """
    if not offsets:
        plain = _plain_group(text, labels, axis_keys, quoted)
        if plain is not None:
            return plain
    return choose_verdict(
        text,
        shape=lambda node: _candidates_of(node, labels, axis_keys),
        read=lambda candidates: _group_result(candidates, labels, axis_keys, text),
        scores=_group_scores,
        failed=lambda error: group_failed(labels, axis_keys, error),
        no_object=NO_GROUP_OBJECT,
        quoted=quoted,
    )


def _candidates_of(node: JsonNode, labels: Sequence[str], axis_keys: Sequence[str]) -> dict[str, JsonNode] | None:
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
        if member is not None and axes_of(member, axis_keys) is not None:
            return node.members
    return None


def _group_scores(result: GroupParseResult) -> dict[str, dict[str, int | None]]:
    return {label: scores_by_axis(r) for label, r in result.candidates.items()}


def _group_result(
    chosen: dict[str, JsonNode], labels: Sequence[str], axis_keys: Sequence[str], text: str
) -> GroupParseResult:
    results: dict[str, ParseResult] = {}
    for label in labels:
        node = chosen.get(label)
        axes = axes_of(node, axis_keys) if node is not None else None
        if axes is None:
            results[label] = all_failed(axis_keys, f"candidate {label!r} missing from the answer")
            continue
        results[label] = ParseResult(axes=node_axes(axes, axis_keys, text))
    return GroupParseResult(candidates=results)


def _plain_group(
    text: str, labels: Sequence[str], axis_keys: Sequence[str], quoted: frozenset[bytes]
) -> GroupParseResult | None:
    """The fast path of :func:`parse_group_scores` for an answer that is exactly one well-formed group object.

    Structured output makes that the usual case; anything else returns None. Gives no score offsets.
    """
    responses = plain_verdict(text, "responses", quoted)
    if responses is None:
        return None
    results: dict[str, ParseResult] = {}
    for label in labels:
        candidate = responses.get(label)
        if isinstance(candidate, dict) and isinstance(candidate.get("axes"), dict):
            candidate = candidate["axes"]
        if not isinstance(candidate, dict) or not any(key in candidate for key in axis_keys):
            return None  # a missing or odd candidate: let the tolerant reader word the error
        results[label] = ParseResult(axes=decoded_axes(candidate, axis_keys))
    return GroupParseResult(candidates=results)
