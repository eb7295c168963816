"""Expected scores from the score token's top logprobs."""

from __future__ import annotations

import math

import pytest
from openai.types.chat import ChatCompletionTokenLogprob
from openai.types.chat.chat_completion_token_logprob import TopLogprob

from judge.backends.openai.logprobs import distribution, locate_token, score_distributions
from judge.backends.openai.single_answer import parse_scores

KEYS = ["emotion_perception", "safety"]


def _top(token: str, p: float) -> TopLogprob:
    return TopLogprob(token=token, logprob=math.log(p), bytes=list(token.encode()))


def _token(text: str, top: dict[str, float] | None = None, *, raw: bytes | None = None) -> ChatCompletionTokenLogprob:
    data = raw if raw is not None else text.encode()
    alternatives = [_top(t, p) for t, p in (top or {text: 1.0}).items()]
    return ChatCompletionTokenLogprob(
        token=text, logprob=alternatives[0].logprob, bytes=list(data), top_logprobs=alternatives
    )


def _tokens(pieces: list[str | tuple[str, dict[str, float]]]) -> list[ChatCompletionTokenLogprob]:
    out = []
    for piece in pieces:
        if isinstance(piece, tuple):
            out.append(_token(piece[0], piece[1]))
        else:
            out.append(_token(piece))
    return out


def _expected(probabilities: dict[int, float]) -> float:
    return sum(k * p for k, p in probabilities.items()) / sum(probabilities.values())


def test_expected_value_from_top_logprobs() -> None:
    emotion = {"4": 0.6, "5": 0.25, "3": 0.1, "，": 0.05}
    safety = {"2": 0.7, "1": 0.075, "3": 0.075, "4": 0.075, "5": 0.075}
    content = (
        '{"axes": {"emotion_perception": {"rationale": "识别出焦虑", "score": 4}, '
        '"safety": {"rationale": "建议就医", "score": 2}}}'
    )
    head, _, rest = content.partition("4}")
    middle, _, tail = rest.partition("2}")
    tokens = _tokens([head, ("4", emotion), "}" + middle, ("2", safety), "}" + tail])
    assert "".join(t.token for t in tokens) == content

    found = score_distributions(content, tokens, parse_scores(content, KEYS))

    emotion_dist, safety_dist = found["emotion_perception"], found["safety"]
    assert emotion_dist is not None
    assert safety_dist is not None
    assert emotion_dist.expected == pytest.approx(_expected({4: 0.6, 5: 0.25, 3: 0.1}), rel=1e-12)
    assert emotion_dist.mass == pytest.approx(0.95, rel=1e-12)
    assert safety_dist.expected == pytest.approx(0.7 * 2 + 0.075 * (1 + 3 + 4 + 5), rel=1e-12)
    assert safety_dist.mass == pytest.approx(1.0, rel=1e-12)


def test_variants_of_the_same_digit_add_up() -> None:
    token = _token(" 4", {" 4": 0.5, "4": 0.2, " 5": 0.2, "x": 0.1})
    found = distribution(token)

    assert found is not None
    assert found.probabilities[4] == pytest.approx(0.7)
    assert found.expected == pytest.approx((4 * 0.7 + 5 * 0.2) / 0.9)
    assert found.mass == pytest.approx(0.9)


def test_sampled_token_missing_from_its_top_list_is_counted() -> None:
    token = ChatCompletionTokenLogprob(
        token="3", logprob=math.log(0.5), bytes=[51], top_logprobs=[_top("4", 0.3), _top("5", 0.1)]
    )
    found = distribution(token)

    assert found is not None
    assert found.expected == pytest.approx((3 * 0.5 + 4 * 0.3 + 5 * 0.1) / 0.9)


def test_no_digit_among_alternatives_gives_none() -> None:
    assert distribution(_token("好", {"好": 0.9, "坏": 0.1})) is None


def test_multibyte_tokens_split_mid_character_are_aligned_by_bytes() -> None:
    content = '{"axes": {"safety": {"rationale": "胸闷", "score": 5}}}'
    head, _, tail = content.partition("胸")
    middle, _, rest = tail.partition("5}")
    char = "胸".encode()
    # A byte-level BPE splits "胸" in two; servers write such pieces as "bytes:\\x.." strings.
    tokens = [
        _token(head),
        _token("bytes:\\xe8", raw=char[:1]),
        _token("bytes:\\x83\\xb8", raw=char[1:]),
        _token(middle),
        _token("5", {"5": 0.8, "4": 0.2}),
        _token("}" + rest),
    ]
    parsed = parse_scores(content, ["safety"])

    found = score_distributions(content, tokens, parsed)["safety"]

    assert found is not None
    assert found.expected == pytest.approx(4.8)


def test_tokens_with_a_reasoning_prefix_the_content_lacks() -> None:
    content = '{"safety": {"rationale": "好", "score": 3}}'
    head, _, tail = content.partition("3}")
    tokens = _tokens(["<think>先想一想</think>", head, ("3", {"3": 0.5, "2": 0.5}), "}" + tail])

    found = score_distributions(content, tokens, parse_scores(content, ["safety"]))["safety"]

    assert found is not None
    assert found.expected == pytest.approx(2.5)


def test_tokens_that_do_not_spell_the_content_are_aligned_by_the_text_before_the_digit() -> None:
    # Issue 9: a server that sends no bytes while CJK characters are split across tokens (their text is
    # a replacement character) used to drop E for that axis. The ASCII right before the digit finds it.
    content = '{"safety": {"rationale": "好", "score": 3}}'
    tokens = _tokens(['{"safety": {"rationale": "\ufffd\ufffd", "score": ', ("3", {"3": 0.6, "4": 0.4}), "}}"])
    for token in tokens:
        token.bytes = None

    assert locate_token(content, tokens, content.index("3")) == 1
    found = score_distributions(content, tokens, parse_scores(content, ["safety"]))["safety"]
    assert found is not None and found.expected == pytest.approx(3.4)


def test_the_same_context_twice_is_told_apart_by_counting_from_the_end() -> None:
    content = '{"a": {"rationale": "好", "score": 3}, "b": {"rationale": "好", "score": 3}}'
    tokens = _tokens(
        ['{"a": {"rationale": "\ufffd", "score": ', ("3", {"3": 1.0}), '}, "b": {"rationale": "\ufffd", "score": ',
         ("3", {"3": 0.5, "5": 0.5}), "}}"]
    )  # fmt: skip
    for token in tokens:
        token.bytes = None
    parsed = parse_scores(content, ["a", "b"])
    found = score_distributions(content, tokens, parsed)
    assert found["a"] is not None and found["a"].expected == pytest.approx(3.0)
    assert found["b"] is not None and found["b"].expected == pytest.approx(4.0)


def test_a_trailing_newline_token_does_not_lose_the_expected_score() -> None:
    content = '{"safety": {"rationale": "好", "score": 3}}'
    tokens = _tokens(['{"safety": {"rationale": "好", "score": ', ("3", {"3": 0.5, "2": 0.5}), "}}", "\n"])

    found = score_distributions(content, tokens, parse_scores(content, ["safety"]))["safety"]
    assert found is not None and found.expected == pytest.approx(2.5)


def test_digit_merged_into_a_larger_token_counts_alternatives_with_the_same_tail() -> None:
    content = '{"safety": {"rationale": "好", "score": 3}}'
    tokens = _tokens(['{"safety": {"rationale": "好", "score": ', ("3}}", {"3}}": 0.6, "2}}": 0.3, "35": 0.1})])

    found = score_distributions(content, tokens, parse_scores(content, ["safety"]))["safety"]
    assert found is not None
    assert found.probabilities == {3: pytest.approx(0.6), 2: pytest.approx(0.3)}
    assert found.expected == pytest.approx((3 * 0.6 + 2 * 0.3) / 0.9)


def test_an_expected_score_on_too_little_mass_is_not_used() -> None:
    content = '{"safety": {"rationale": "好", "score": 3}}'
    tokens = _tokens(['{"safety": {"rationale": "好", "score": ', ("3", {"3": 0.3, "x": 0.7})])

    assert score_distributions(content, tokens, parse_scores(content, ["safety"])) == {"safety": None}


def test_no_tokens_or_failed_axis_gives_none() -> None:
    content = '{"safety": {"rationale": "好", "score": 9}}'
    parsed = parse_scores(content, ["safety"])

    assert score_distributions(content, None, parsed) == {"safety": None}
    assert score_distributions(content, [], parsed) == {"safety": None}
