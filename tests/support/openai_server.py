"""A loopback server speaking the OpenAI chat-completions protocol, scriptable per test.

In tests::

    with OpenAIServer() as server:              # or the ``openai_server`` fixture
        server.script(rate_limited(retry_after="1"), Verdict(scores=2))
        server.default = lambda request: Verdict(scores={"safety": 1})
        ...  # point an AsyncOpenAI client at server.url
        assert server.calls == 2 and server.requests[-1].body["model"] == "m"

Scripted behaviours are used one per request, in arrival order; when the script is empty, ``default``
answers (a behaviour, or a function of the request returning one). The default verdict works for any
rubric: axis keys come from the request's ``response_format`` JSON schema, else from the prompt's
``RUBRIC_AXES:`` line, and each score is derived from a hash of the fenced (judged) texts.

Group-mode prompts (several candidate answers, ``RUBRIC_CANDIDATES:`` line or a ``responses`` schema) get a
group verdict ``{"responses": {label: {axis: {rationale, score}}}}``; by default each candidate gets the scores
it would get judged alone. ``tie_rate`` (benchmarks) makes that fraction of samples share their prompt's scores,
as a strict judge does with similar rollouts; ``vary_confidence`` gives each score token its own top-logprob mass.

A request that asks for no axes at all (a generator's, in curation) gets a ``Generation`` draft instead of a
verdict: a CoT in the five steps and a response, numbered ``第N稿`` so that a refinement gets the next draft.

Prefix cache: like a provider's (DeepSeek, OpenAI, vLLM/SGLang prefix caching), the server remembers the
prompts it has seen in blocks of ``PREFIX_BLOCK_CHARS`` characters and reports how much of each prompt's start
it had seen before, as ``usage.prompt_tokens_details.cached_tokens`` (``usage_style="openai"``) or DeepSeek's
``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens`` (``usage_style="deepseek"``). Tokens are counted as
characters / 2 throughout, or by a real tokenizer (``tokenizer=`` a ``tokenizer.json``), so shares are measured,
not assumed. ``rationale_chars`` makes full rationales that
long (benchmarks: realistic completion sizes); a request asking for brief rationales or none gets them.
``stall_rate`` stalls that fraction of calls (drawn at random per call, seeded) for ``stall_s`` seconds; a hedge of a
stalled call is a call of its own and may stall too, as at a real provider (stalls are per request, not per body).

For benchmarks, in a separate process: ``python -m tests.support.openai_server --port P --latency-ms 100``.

Split by concern, re-exported here so that existing imports keep working: the server itself in
:mod:`tests.support.loopback_server`, its answers in :mod:`tests.support.completion_answers`, the prefix cache and
token counting in :mod:`tests.support.prefix_cache`, the command line in :mod:`tests.support.loopback_cli`, and
what the judge says (requests, behaviours, verdicts, logprobs) in :mod:`tests.support.judge_answers`.
"""

from __future__ import annotations

from tests.support.judge_answers import (  # noqa: F401 - re-exported: tests import behaviours from here
    Behaviour,
    BehaviourSource,
    CandidateScores,
    CandidateSpec,
    ChatRequest,
    Generation,
    HTTPError,
    Patient,
    Perturbed,
    RawBody,
    RecordedCall,
    ScoreSpec,
    Slow,
    Tag,
    Text,
    Tokens,
    Truncated,
    Verdict,
    bad_request,
    confidence,
    default_scores,
    garbage,
    generation_text,
    group_verdict_pieces,
    logprob_tokens,
    patient_text,
    perturbed_text,
    rate_limited,
    resolve_group_scores,
    resolve_scores,
    server_error,
    verdict_pieces,
)
from tests.support.loopback_cli import create_app, main  # noqa: F401 - re-exported
from tests.support.loopback_server import OpenAIServer, serve_forever  # noqa: F401 - re-exported
from tests.support.prefix_cache import PREFIX_BLOCK_CHARS, PREFIX_CACHE_BLOCKS, PrefixCache  # noqa: F401 - re-exported

if __name__ == "__main__":
    main()
