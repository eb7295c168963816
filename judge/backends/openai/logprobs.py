"""Expected scores from the judge's token log-probabilities.

The score of axis k is the digit after ``"score":`` in that axis's object; :mod:`.parsing` gives its
character offset in the answer. Here that offset is mapped onto the returned tokens (by their bytes when
the server gives them, else by their text), and the score token's top alternatives "1".."5" give
``E = Σ k·p(k) / Σ p(k)`` and ``mass = Σ p(k)``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from openai.types.chat import ChatCompletionTokenLogprob

from judge.backends.openai.parsing import ParseResult

_DIGITS = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}


@dataclass(frozen=True)
class ScoreDistribution:
    expected: float
    mass: float
    probabilities: dict[int, float]


def _starts(pieces: Sequence[bytes] | Sequence[str]) -> list[int]:
    starts, at = [], 0
    for piece in pieces:
        starts.append(at)
        at += len(piece)
    return starts


def locate_token(content: str, tokens: Sequence[ChatCompletionTokenLogprob], offset: int) -> int | None:
    """Index of the token that carries ``content[offset]``, or None if the tokens don't spell ``content``.

    The tokens may spell more than the content (a server that strips a reasoning prefix from the message
    but not from the logprobs), so the content is aligned to the end of the tokens.
    """
    if not 0 <= offset < len(content):
        return None
    if all(token.bytes is not None for token in tokens):
        byte_pieces = [bytes(token.bytes or ()) for token in tokens]
        joined_bytes, content_bytes = b"".join(byte_pieces), content.encode("utf-8")
        if joined_bytes.endswith(content_bytes):
            at = len(joined_bytes) - len(content_bytes) + len(content[:offset].encode("utf-8"))
            return bisect_right(_starts(byte_pieces), at) - 1
    text_pieces = [token.token for token in tokens]
    joined = "".join(text_pieces)
    if joined.endswith(content):
        at = len(joined) - len(content) + offset
        return bisect_right(_starts(text_pieces), at) - 1
    return None


def distribution(token: ChatCompletionTokenLogprob) -> ScoreDistribution | None:
    """E and mass over "1".."5" from a score token's top logprobs (None when no digit is among them)."""
    probabilities: dict[int, float] = {}
    alternatives = [(top.token, top.logprob) for top in token.top_logprobs]
    if all(text != token.token for text, _ in alternatives):
        # Some servers leave the sampled token out of its own top list.
        alternatives.append((token.token, token.logprob))
    for text, logprob in alternatives:
        level = _DIGITS.get(text.strip())
        if level is not None:
            probabilities[level] = probabilities.get(level, 0.0) + math.exp(logprob)
    mass = sum(probabilities.values())
    if mass <= 0.0:
        return None
    expected = sum(level * p for level, p in probabilities.items()) / mass
    return ScoreDistribution(expected=min(max(expected, 1.0), 5.0), mass=min(mass, 1.0), probabilities=probabilities)


def score_distributions(
    content: str, tokens: Sequence[ChatCompletionTokenLogprob] | None, parsed: ParseResult
) -> dict[str, ScoreDistribution | None]:
    """Per parsed axis, the distribution of its score token; None where it can't be located."""
    result: dict[str, ScoreDistribution | None] = {}
    for key, axis in parsed.axes.items():
        result[key] = None
        if not tokens or axis.score is None or axis.score_offset is None:
            continue
        index = locate_token(content, tokens, axis.score_offset)
        if index is None or tokens[index].token.strip() != str(axis.score):
            continue
        result[key] = distribution(tokens[index])
    return result
