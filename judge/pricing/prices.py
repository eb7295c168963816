"""Token prices per profile, and the cost of a usage under them.

Providers bill prompt tokens served from their prefix cache at a fraction of a miss (DeepSeek a tenth, OpenAI a
half), so a cost needs three prices. The cost is computed from the tokens the provider reported, never estimated:
of a hedged call's copies only the one that answered reports tokens; the others (one per hedge sent) were cancelled
before their answer, so their tokens are unknown (a provider may still bill part of them). They are counted beside
the amount (``unpriced_calls``) rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from judge.verdicts import Usage

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class TokenPrices(BaseModel):
    """What a provider bills per million tokens, in one currency (judges.yaml: ``prices:`` of a profile)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    # Per million prompt tokens not served from the provider's prefix cache.
    prompt: NonNegative
    # Per million prompt tokens served from the prefix cache; None: the prompt price (no cache discount).
    cached: NonNegative | None = None
    completion: NonNegative

    def amount(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        """The cost of these tokens (``cached_tokens`` are part of ``prompt_tokens``)."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_price = self.prompt if self.cached is None else self.cached
        total = (prompt_tokens - cached) * self.prompt + cached * cached_price + completion_tokens * self.completion
        return total / 1_000_000


def cost(prices: TokenPrices | None, usage: Usage | Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"amount", "currency", "unpriced_calls"}`` for a usage (a :class:`Usage` or its counts); None unpriced."""
    if prices is None:
        return None
    counts = usage.model_dump() if isinstance(usage, Usage) else usage

    def count(name: str) -> int:
        value = counts.get(name)
        return value if isinstance(value, int) else 0

    amount = prices.amount(count("prompt_tokens"), count("cached_tokens"), count("completion_tokens"))
    return {"amount": round(amount, 6), "currency": prices.currency, "unpriced_calls": count("hedges")}
