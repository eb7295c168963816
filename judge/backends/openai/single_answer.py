"""Parsing a single-sample judge answer into a score (or an error) per axis.

Accepts plain JSON, JSON in a Markdown fence, JSON with prose before or after it, and answers with several
JSON objects; :mod:`.verdict` says which object is the verdict. A score must be an integer 1..5 (``4``,
``4.0`` or ``"4"``); anything else is an error for that axis, never clamped. Character offsets of each
score are kept so that :mod:`judge.backends.openai.logprobs` can find the score token.
"""

from __future__ import annotations

from collections.abc import Sequence

from judge.backends.openai.axis_scores import axes_of, decoded_axes, node_axes
from judge.backends.openai.parse_results import NO_OBJECT, ParseResult, all_failed, scores_by_axis
from judge.backends.openai.verdict import choose_verdict, plain_verdict


def parse_scores(
    text: str, axis_keys: Sequence[str], *, offsets: bool = True, quoted: frozenset[bytes] = frozenset()
) -> ParseResult:
    """Parse a judge's answer into a score (or an error) for each of ``axis_keys``.

    ``quoted``: :func:`~judge.backends.openai.verdict.quoted_objects` of the prompt's fenced texts, never
    taken as the verdict. ``offsets=False`` (no logprobs to align) lets an answer that is plain JSON be
    decoded by orjson, about 20x faster than the offset-keeping reader; everything else goes through the
    tolerant reader.
    """
    if not offsets:
        plain = _plain_single(text, axis_keys, quoted)
        if plain is not None:
            return plain
    return choose_verdict(
        text,
        shape=lambda node: axes_of(node, axis_keys),
        read=lambda axes: ParseResult(axes=node_axes(axes, axis_keys, text)),
        scores=scores_by_axis,
        failed=lambda error: all_failed(axis_keys, error),
        no_object=NO_OBJECT,
        quoted=quoted,
    )


def _plain_single(text: str, axis_keys: Sequence[str], quoted: frozenset[bytes]) -> ParseResult | None:
    """The fast path of :func:`parse_scores` for an answer that is exactly one ``{"axes": {...}}`` object.

    Structured output makes that the usual case; anything else returns None. Gives no score offsets.
    """
    axes = plain_verdict(text, "axes", quoted)
    if axes is None or not any(key in axes for key in axis_keys):
        return None
    return ParseResult(axes=decoded_axes(axes, axis_keys))
