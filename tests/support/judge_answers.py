"""What the loopback judge says: the request as received, the scriptable behaviours, and the answers built
from them (verdicts, group verdicts, generation drafts, logprob tokens). The HTTP side is in
:mod:`tests.support.openai_server`, which re-exports everything here.

Split by concern, re-exported here so that existing imports keep working:

- :mod:`tests.support.chat_request`: the request, read as a third party would (axes, candidates, fences);
- :mod:`tests.support.judge_behaviours`: what a test scripts (``Verdict``, ``Slow``, ``garbage()`` ...);
- :mod:`tests.support.verdict_content`: scores and the verdict JSON as tagged pieces;
- :mod:`tests.support.text_answers`: drafts, patient turns and perturbations (answers that are not verdicts);
- :mod:`tests.support.score_logprobs`: the ``logprobs.content`` tokens of a verdict.
"""

from __future__ import annotations

from tests.support.chat_request import ChatRequest
from tests.support.judge_behaviours import (
    Behaviour,
    BehaviourSource,
    CandidateScores,
    CandidateSpec,
    Generation,
    HTTPError,
    Patient,
    Perturbed,
    RawBody,
    RecordedCall,
    ScoreSpec,
    Slow,
    Text,
    Truncated,
    Verdict,
    bad_request,
    garbage,
    rate_limited,
    server_error,
)
from tests.support.score_logprobs import Tokens, logprob_tokens
from tests.support.text_answers import generation_text, patient_text, perturbed_text
from tests.support.verdict_content import (
    Tag,
    confidence,
    default_scores,
    group_verdict_pieces,
    resolve_group_scores,
    resolve_scores,
    verdict_pieces,
)

__all__ = [
    "Behaviour",
    "BehaviourSource",
    "CandidateScores",
    "CandidateSpec",
    "ChatRequest",
    "Generation",
    "HTTPError",
    "Patient",
    "Perturbed",
    "RawBody",
    "RecordedCall",
    "ScoreSpec",
    "Slow",
    "Tag",
    "Text",
    "Tokens",
    "Truncated",
    "Verdict",
    "bad_request",
    "confidence",
    "default_scores",
    "garbage",
    "generation_text",
    "group_verdict_pieces",
    "logprob_tokens",
    "patient_text",
    "perturbed_text",
    "rate_limited",
    "resolve_group_scores",
    "resolve_scores",
    "server_error",
    "verdict_pieces",
]
