"""Scoring invariants: a sample scores the same alone and inside a padded batch; level probabilities are sane."""

from __future__ import annotations

import pytest
import torch

from reward_model.data import LabelledRecord, TokenIds, render
from reward_model.model import ScoringModel, pad_batch


def _max_diff(a, b) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def test_alone_and_in_a_padded_batch_agree(scoring: ScoringModel, records: list[LabelledRecord]) -> None:
    convs = [r.conversation for r in records[:12]]
    encoded = scoring.encode(convs)
    assert len({len(e.input_ids) for e in encoded}) > 3, "the batch must need padding"
    batch = scoring.score(convs)
    for conv, in_batch in zip(convs, batch, strict=True):
        [alone] = scoring.score([conv])
        assert _max_diff(alone.expected, in_batch.expected) < 1e-4
        assert alone.probs is not None and in_batch.probs is not None
        for row_alone, row_batch in zip(alone.probs, in_batch.probs, strict=True):
            assert _max_diff(row_alone, row_batch) < 1e-4


def test_padded_batch_uses_a_mask_only_when_needed() -> None:
    ids, mask = pad_batch([[1, 2, 3], [4, 5]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[1, 2, 3], [4, 5, 0]] and mask is not None and mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    _, none = pad_batch([[1, 2], [3, 4]], pad_id=0, device=torch.device("cpu"))
    assert none is None


def test_ordinal_probabilities_are_a_distribution_matching_the_expected_score(
    scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    for scores in scoring.score([r.conversation for r in records[:8]]):
        assert scores.probs is not None
        for axis, probs in zip(scores.axis_keys, scores.probs, strict=True):
            assert all(p >= 0 for p in probs)
            assert sum(probs) == pytest.approx(1.0, abs=1e-5)
            assert scores.expected_of(axis) == pytest.approx(sum((i + 1) * p for i, p in enumerate(probs)), abs=1e-4)
            assert 1 <= scores.level_of(axis) <= 5
            assert scores.pass_probability(axis, 4.0) == pytest.approx(probs[4])


def test_long_input_is_scored_on_its_tail_and_flagged(scoring: ScoringModel, records: list[LabelledRecord]) -> None:
    conv = records[0].conversation
    long = type(conv)((("user", "我 头疼 " * 500),), conv.reasoning, conv.response)
    [scores] = scoring.score([long])
    assert scores.truncated and scores.n_tokens > scoring.max_length


def test_token_ids_and_rendered_text_score_like_the_conversation(
    scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    conv = records[3].conversation
    [encoded] = scoring.encode([conv])
    text = render(scoring.tokenizer, conv)
    by_conv, by_text, by_ids = scoring.score([conv, text, TokenIds(encoded.input_ids)])
    assert by_conv.expected == by_text.expected == by_ids.expected
