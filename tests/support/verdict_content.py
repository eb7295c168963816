"""A verdict's content: the scores (derived from the judged texts, or scripted) and the verdict JSON as pieces,
each score digit tagged with its axis (and candidate), so that logprob tokens can be built around it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from tests.support.chat_request import JUDGED_FENCES, ChatRequest
from tests.support.judge_behaviours import ScoreSpec, Verdict

# A score digit's tag in a verdict's pieces: the axis key, or (candidate label, axis key) in a group verdict.
Tag = str | tuple[str, str]


def default_scores(
    request: ChatRequest, *, candidate: str | None = None, tie_rate: float | None = None
) -> dict[str, int]:
    """Scores 1..5 derived from the judged texts: the same sample gets the same scores whatever the nonce.

    ``candidate``: one candidate of a group request. ``tie_rate``: that fraction of samples (chosen by
    their hash) get their conversation's scores instead of their own, so rollouts of one prompt tie.
    """
    texts = request.judged_texts(candidate)
    judged = "\x00".join(texts) or request.prompt
    if tie_rate is not None and hashlib.sha256(f"tie\x00{judged}".encode()).digest()[0] < tie_rate * 256:
        # Scored as its conversation is: every tied rollout of one prompt gets the same scores.
        shared = [text for label, text in request.fenced if not label.startswith(JUDGED_FENCES)]
        judged = "\x00".join(["shared", *shared])
    scores = {}
    for key in request.axis_keys:
        digest = hashlib.sha256(f"{key}\x00{judged}".encode()).digest()
        scores[key] = 1 + digest[0] % 5
    return scores


def confidence(request: ChatRequest, key: str, candidate: str | None = None) -> float:
    """A per-sample, per-axis top probability in [0.45, 0.95] (``vary_confidence``)."""
    judged = "\x00".join(request.judged_texts(candidate))
    return 0.45 + 0.5 * hashlib.sha256(f"conf\x00{key}\x00{judged}".encode()).digest()[0] / 255


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def resolve_scores(
    spec: ScoreSpec, request: ChatRequest, *, candidate: str | None = None, tie_rate: float | None = None
) -> dict[str, int]:
    scores = default_scores(request, candidate=candidate, tie_rate=tie_rate)
    if isinstance(spec, int):
        return dict.fromkeys(scores, spec)
    if callable(spec):
        scores.update(spec(request))
    elif spec is not None:
        scores.update(spec)
    return scores


def resolve_group_scores(
    verdict: Verdict, request: ChatRequest, labels: list[str], tie_rate: float | None
) -> dict[str, dict[str, int]]:
    overrides = verdict.by_candidate(request) if callable(verdict.by_candidate) else verdict.by_candidate or {}
    scores = {}
    for label in labels:
        scores[label] = resolve_scores(verdict.scores, request, candidate=label, tie_rate=tie_rate)
        override = overrides.get(label)
        if isinstance(override, int):
            scores[label] = dict.fromkeys(scores[label], override)
        elif override is not None:
            scores[label].update(override)
    return scores


def group_verdict_pieces(
    scores: Mapping[str, Mapping[str, int]], rationale: str | None
) -> list[tuple[str, Tag | None]]:
    """A group verdict as pieces; a piece tagged (label, axis) is that candidate's score digit for that axis."""
    pieces: list[tuple[str, Tag | None]] = [('{"responses": {', None)]
    for i, (label, axes) in enumerate(scores.items()):
        pieces.append((f"{', ' if i else ''}{_dumps(label)}: {{", None))
        for text, key in verdict_pieces(axes, rationale)[1:-1]:
            pieces.append((text, (label, key) if key is not None else None))
        pieces.append(("}", None))
    pieces.append(("}}", None))
    return pieces


def verdict_pieces(scores: Mapping[str, int], rationale: str | None) -> list[tuple[str, str | None]]:
    """The verdict JSON as pieces; a piece tagged with an axis key is that axis's score digit.

    ``rationale=None``: bare scores (``{"axes": {"safety": 4}}``), as asked by ``rationale: none``.
    """
    pieces: list[tuple[str, str | None]] = [('{"axes": {', None)]
    for i, (key, score) in enumerate(scores.items()):
        head = ", " if i else ""
        if rationale is None:
            pieces.append((f"{head}{_dumps(key)}: ", None))
            pieces.append((str(score), key))
            continue
        pieces.append((f'{head}{_dumps(key)}: {{"rationale": {_dumps(rationale)}, "score": ', None))
        pieces.append((str(score), key))
        pieces.append(("}", None))
    pieces.append(("}}", None))
    return pieces
