"""Token prices and what a usage costs under them (judge/pricing/prices.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from judge.pricing.prices import TokenPrices, cost
from judge.profiles import JudgeProfile
from judge.verdicts import Usage

# DeepSeek-like: a cache hit a tenth of a miss.
DEEPSEEK = TokenPrices(currency="CNY", prompt=2.0, cached=0.2, completion=8.0)


def test_cached_prompt_tokens_are_billed_at_the_cached_price() -> None:
    # 5,187 prompt tokens of which 4,460 cached, 841 completion: the joint prmed verdict.
    amount = DEEPSEEK.amount(5_187, 4_460, 841)
    assert amount == pytest.approx((727 * 2.0 + 4_460 * 0.2 + 841 * 8.0) / 1e6)
    # Without a cached price the cache saves nothing; cached tokens never exceed the prompt.
    flat = TokenPrices(prompt=2.0, completion=8.0)
    assert flat.amount(5_187, 4_460, 841) == pytest.approx((5_187 * 2.0 + 841 * 8.0) / 1e6)
    assert DEEPSEEK.amount(100, 500, 0) == pytest.approx(100 * 0.2 / 1e6)


def test_cost_of_a_usage_or_its_counts_and_the_hedges_it_cannot_price() -> None:
    usage = Usage(calls=3, prompt_tokens=15_000, cached_tokens=12_000, completion_tokens=2_400, hedges=1)
    expected = {"amount": round(DEEPSEEK.amount(15_000, 12_000, 2_400), 6), "currency": "CNY", "unpriced_calls": 1}
    assert cost(DEEPSEEK, usage) == expected
    assert cost(DEEPSEEK, usage.model_dump()) == expected
    # Job summaries are counts that may lack keys: missing counts are none spent.
    assert cost(DEEPSEEK, {"calls": 0}) == {"amount": 0.0, "currency": "CNY", "unpriced_calls": 0}
    # No prices: no cost, never a guessed one.
    assert cost(None, usage) is None


@pytest.mark.parametrize(
    ("prices", "field"),
    [
        ({"prompt": -1, "completion": 1}, "prompt"),
        ({"prompt": 1, "completion": float("inf")}, "completion"),
        ({"prompt": 1, "completion": 1, "currency": "元"}, "currency"),
        ({"prompt": 1}, "completion"),
        ({"prompt": 1, "completion": 1, "cahced": 0.1}, "cahced"),
    ],
)
def test_bad_prices_are_refused_naming_the_field(prices: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JudgeProfile.model_validate({"name": "j", "model": "m", "prices": prices})
    assert any(error["loc"][-1] == field for error in caught.value.errors())


def test_prices_do_not_change_the_profile_hash_so_no_cached_verdict_is_lost() -> None:
    plain = JudgeProfile.model_validate({"name": "j", "model": "m"})
    priced = JudgeProfile.model_validate({"name": "j", "model": "m", "prices": DEEPSEEK.model_dump()})
    assert priced.hash == plain.hash
    assert priced.identity != plain.identity
