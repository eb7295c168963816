"""Expected scores from the judge's token log-probabilities.

The score of axis k is the digit after ``"score":`` in that axis's object; :mod:`.axis_scores` gives its
character offset in the answer. Here that offset is mapped onto the returned tokens, and the score token's
top alternatives "1".."5" give ``E = Σ k·p(k) / Σ p(k)`` and ``mass = Σ p(k)``.

Mapping is tolerant of what servers do (issue 9: an axis that silently fell back to its integer put two
scales in one GRPO group):

- tokens that spell more than the content (a reasoning prefix, a trailing ``"\\n"``): the content is found
  inside the tokens, not only at their end;
- tokens without ``bytes`` whose text cannot spell CJK characters split across tokens: the digit is found by
  the ASCII text right before it (``", "score": ``), counted from the end of the answer;
- a digit merged with what follows (``"4},"``): the alternatives ``"5},"``, ``"3},"`` … count as levels.

An expected score resting on less than :data:`MIN_MASS` of the probability is not used.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from openai.types.chat import ChatCompletionTokenLogprob

from judge.backends.openai.parse_results import ParseResult

# Below this much probability on "1".."5", the top logprobs do not describe the score: no E.
MIN_MASS = 0.5
# How much ASCII context before the digit is used to find it in tokens that cannot spell the content.
_WINDOW = 24
_DIGIT_ALONE = re.compile(r"\s*([1-5])\s*")


@dataclass(frozen=True)
class ScoreDistribution:
    expected: float
    mass: float
    probabilities: dict[int, float]

    def normalised(self) -> dict[int, float]:
        """The level distribution, summing to 1 over the levels the top logprobs name."""
        total = sum(self.probabilities.values())
        return {level: p / total for level, p in sorted(self.probabilities.items())} if total > 0 else {}


def _starts(pieces: Sequence[bytes] | Sequence[str]) -> list[int]:
    starts, at = [], 0
    for piece in pieces:
        starts.append(at)
        at += len(piece)
    return starts


@dataclass(frozen=True)
class Located:
    """The token carrying a score digit, and where in that token's text the digit sits."""

    index: int
    position: int


def _in_pieces(pieces: Sequence[bytes] | Sequence[str], at: int) -> Located:
    starts = _starts(pieces)
    index = bisect_right(starts, at) - 1
    return Located(index, at - starts[index])


def locate(content: str, tokens: Sequence[ChatCompletionTokenLogprob], offset: int) -> Located | None:
    """The token that carries ``content[offset]`` and the digit's position in it, or None."""
    if not 0 <= offset < len(content):
        return None
    if tokens and all(token.bytes is not None for token in tokens):
        byte_pieces = [bytes(token.bytes or ()) for token in tokens]
        joined_bytes, content_bytes = b"".join(byte_pieces), content.encode("utf-8")
        # The last occurrence: tokens may spell a prefix (reasoning) before the content, or whitespace after.
        start = joined_bytes.rfind(content_bytes)
        if start != -1:
            found = _in_pieces(byte_pieces, start + len(content[:offset].encode("utf-8")))
            # The digit's position counts characters; what precedes it in its token is ASCII in a verdict.
            return found
    text_pieces = [token.token for token in tokens]
    joined = "".join(text_pieces)
    start = joined.rfind(content)
    if start != -1:
        return _in_pieces(text_pieces, start + offset)
    return _locate_by_context(content, joined, text_pieces, offset)


def _locate_by_context(content: str, joined: str, pieces: Sequence[str], offset: int) -> Located | None:
    """Find the digit by the ASCII text before it, counted from the end (tokens that cannot spell CJK text)."""
    begin = offset
    while begin > 0 and offset - begin < _WINDOW and content[begin - 1].isascii():
        begin -= 1
    window = content[begin : offset + 1]
    if len(window) < 4:
        return None
    after = _count(content, window, begin + 1)
    # The occurrence in the tokens with as many occurrences after it as the content has.
    at = len(joined)
    for _ in range(after + 1):
        at = joined.rfind(window, 0, at)
        if at == -1:
            return None
    return _in_pieces(pieces, at + len(window) - 1)


def _count(text: str, window: str, start: int) -> int:
    count, at = 0, text.find(window, start)
    while at != -1:
        count += 1
        at = text.find(window, at + 1)
    return count


def locate_token(content: str, tokens: Sequence[ChatCompletionTokenLogprob], offset: int) -> int | None:
    """Index of the token that carries ``content[offset]``, or None if it cannot be found."""
    found = locate(content, tokens, offset)
    return found.index if found is not None else None


def _level(text: str, prefix: str, rest_allowed: bool) -> int | None:
    """The level an alternative token stands for: the digit at the score's position, nothing numeric after."""
    if not rest_allowed:
        match = _DIGIT_ALONE.fullmatch(text)
        return int(match.group(1)) if match else None
    if not text.startswith(prefix) or len(text) <= len(prefix):
        return None
    digit, rest = text[len(prefix)], text[len(prefix) + 1 :]
    if digit not in "12345" or any(ch.isdigit() or ch == "." for ch in rest[:1]):
        return None
    return int(digit)


def distribution(token: ChatCompletionTokenLogprob, position: int | None = None) -> ScoreDistribution | None:
    """E and mass over "1".."5" from a score token's top logprobs (None when no digit is among them).

    ``position``: where the digit sits in the token's text; a token with more than the digit (``"4},"``,
    ``": 4"``) counts alternatives with the same text before the digit and no number after it.
    """
    own = token.token
    if position is None:
        position = len(own) - len(own.lstrip())
    prefix = own[:position] if 0 <= position < len(own) else ""
    merged = own.strip() != own[position : position + 1] if 0 <= position < len(own) else False
    probabilities: dict[int, float] = {}
    alternatives = [(top.token, top.logprob) for top in token.top_logprobs]
    if all(text != own for text, _ in alternatives):
        # Some servers leave the sampled token out of its own top list.
        alternatives.append((own, token.logprob))
    for text, logprob in alternatives:
        level = _level(text, prefix, merged)
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
    """Per parsed axis, the distribution of its score token; None where it can't be located or is too thin."""
    result: dict[str, ScoreDistribution | None] = {}
    for key, axis in parsed.axes.items():
        result[key] = None
        if not tokens or axis.score is None or axis.score_offset is None:
            continue
        found = locate(content, tokens, axis.score_offset)
        if found is None:
            continue
        token = tokens[found.index]
        if token.token[found.position : found.position + 1] != str(axis.score):
            continue
        dist = distribution(token, found.position)
        if dist is not None and dist.mass >= MIN_MASS:
            result[key] = dist
    return result
