"""The ``logprobs.content`` tokens of a verdict: text in small chunks at probability 1, and each score digit
with its top alternatives (the chosen score at ``p_top``, or a scripted distribution)."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from tests.support.judge_behaviours import Verdict
from tests.support.verdict_content import Tag

_TOKEN_CHUNK = 4


@dataclass(frozen=True)
class Tokens:
    """Token objects of ``choices[0].logprobs.content``, already serialised (comma-joined), and their count."""

    json: bytes
    count: int


def _token_json(text: str, logprob: float, top: tuple[tuple[str, float], ...]) -> bytes:
    return orjson.dumps(
        {
            "token": text,
            "logprob": logprob,
            "bytes": list(text.encode()),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top],
        }
    )


# The pieces between score digits repeat from request to request (same keys, same rationale), so their
# tokens are serialised once: this keeps the server far from being a benchmark's bottleneck.
@functools.lru_cache(maxsize=8192)
def _text_tokens(text: str, top_n: int) -> Tokens:
    chunks = [text[start : start + _TOKEN_CHUNK] for start in range(0, len(text), _TOKEN_CHUNK)]
    return Tokens(b",".join(_token_json(c, 0.0, ((c, 0.0),)[:top_n]) for c in chunks), len(chunks))


@functools.lru_cache(maxsize=8192)
def _digit_token(text: str, top: tuple[tuple[str, float], ...], fallback_logprob: float) -> Tokens:
    return Tokens(_token_json(text, dict(top).get(text, fallback_logprob), top), 1)


def _score_top(verdict: Verdict, key: str, score: int, p_top: float | None = None) -> tuple[tuple[str, float], ...]:
    p_top = verdict.p_top if p_top is None else p_top
    if verdict.distributions is not None and key in verdict.distributions:
        probabilities = dict(verdict.distributions[key])
    else:
        rest = (1.0 - p_top) / 4
        probabilities = {str(level): p_top if level == score else rest for level in range(1, 6)}
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    return tuple((token, math.log(p)) for token, p in ranked if p > 0)


def logprob_tokens(
    pieces: list[tuple[str, Tag | None]],
    verdict: Verdict,
    scores: Mapping[Tag, int],
    top_n: int,
    p_tops: Mapping[Tag, float] | None = None,
) -> Tokens:
    parts = []
    for text, tag in pieces:
        if tag is None:
            parts.append(_text_tokens(text, top_n))
        else:
            key = tag if isinstance(tag, str) else tag[1]
            p_top = p_tops.get(tag) if p_tops is not None else None
            top = _score_top(verdict, key, scores[tag], p_top)[:top_n]
            parts.append(_digit_token(text, top, math.log(verdict.p_top if p_top is None else p_top)))
    return Tokens(b",".join(part.json for part in parts if part.count), sum(part.count for part in parts))
