"""What a judge's calls cost: the running tally of one prompt's calls, providers' cached-token fields, and a
group call's usage shared over its candidates."""

from __future__ import annotations

from dataclasses import dataclass

from openai.types.completion_usage import CompletionUsage

from judge.verdicts import Usage


@dataclass
class CallTally:
    """Usage of one prompt's calls, mutable while they run."""

    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    hedges: int = 0

    def usage(self) -> Usage:
        return Usage(
            calls=self.calls,
            prompt_tokens=self.prompt_tokens,
            cached_tokens=self.cached_tokens,
            completion_tokens=self.completion_tokens,
            retries=self.retries,
            hedges=self.hedges,
        )


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
    """A group's calls' usage shared over ``parts`` outcomes so that the shares add up to it exactly."""
    shares = []
    for i in range(parts):
        first = i == 0
        shares.append(
            Usage(
                calls=usage.calls if first else 0,
                prompt_tokens=usage.prompt_tokens // parts + (usage.prompt_tokens % parts if first else 0),
                cached_tokens=usage.cached_tokens // parts + (usage.cached_tokens % parts if first else 0),
                completion_tokens=usage.completion_tokens // parts + (usage.completion_tokens % parts if first else 0),
                retries=usage.retries if first else 0,
                hedges=usage.hedges if first else 0,
            )
        )
    return shares
