"""What a judge's calls cost: providers' cached-token fields, and a group call's usage shared over its candidates.

One prompt's calls are tallied in a :class:`~judge.verdicts.Usage` of their own, counted up while they run."""

from __future__ import annotations

from openai.types.completion_usage import CompletionUsage

from judge.verdicts import Usage


def cached_prompt_tokens(usage: CompletionUsage) -> int:
    """Prompt tokens the provider served from its prefix cache: OpenAI's (and vLLM's, SGLang's)
    ``prompt_tokens_details.cached_tokens``, else DeepSeek's ``prompt_cache_hit_tokens``; 0 when neither is given."""
    details = usage.prompt_tokens_details
    if details is not None and details.cached_tokens:
        return min(int(details.cached_tokens), usage.prompt_tokens)
    extra = usage.model_extra
    hit = extra.get("prompt_cache_hit_tokens") if extra else None
    if isinstance(hit, int) and not isinstance(hit, bool) and hit > 0:
        return min(hit, usage.prompt_tokens)
    return 0


def share_usage(usage: Usage, parts: int) -> list[Usage]:
    """A group's calls' usage shared over ``parts`` outcomes so that the shares add up to it exactly: the tokens
    evenly (the first share takes the remainders), the call, retry and hedge counts all on the first."""
    shares = []
    for i in range(parts):
        share = Usage() if i else usage.model_copy()
        for name in _SHARED:
            total = getattr(usage, name)
            setattr(share, name, total // parts + (total % parts if i == 0 else 0))
        shares.append(share)
    return shares


_SHARED = ("prompt_tokens", "cached_tokens", "completion_tokens")
