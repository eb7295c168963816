"""The exploits of issue 9 as runnable scenarios: an honest baseline and the exploit, rewarded through the API.

Each scenario starts the real app (SQLite store, in-process cache) against the loopback OpenAI-protocol judge,
scripted to behave as a judge that the exploit fools (a judge that reads only what it is shown, quotes what it
finds, likes long answers, favours the first candidate…), and returns the reward of an honest baseline and of
the exploit. ``tests/integrity`` asserts that no exploit earns more than its baseline; ``bench/bench_integrity.py``
prints the table of ``docs/reward-integrity.md``, and runs unchanged on the base commit (5ca26cc) to measure
"before": only requests and fields that existed there are used, and fields added since are read with ``get``.
All texts are Chinese except where the exploit is to answer in English.

One module per exploit family, on ``common`` (texts, the naive judge) and ``harness`` (the app, the registry).
A family registers its scenarios when it is imported, so the imports below, in this order, are the order of
``SCENARIOS``: the order of the bench's rows and of the doc's tables. A new family is imported at the end.
Every name is re-exported here, as it was importable from the single module this package replaces.
"""

from __future__ import annotations

from tests.integrity.scenarios.common import (
    _FENCE_CLOSE,
    _FENCE_OPEN,
    _REASONING,
    CHATML_PROMPT,
    COT,
    COT_AXES,
    ENGLISH,
    PATIENT,
    SAFE,
    STEP_WORDS,
    UNSAFE,
    _fold,
    naive_scores,
    naive_verdict,
    seen_responses,
)
from tests.integrity.scenarios.harness import (
    SCENARIOS,
    Context,
    Outcome,
    Scenario,
    _write_length_rubric,
    completion,
    context,
    messages,
    rewards,
    scenario,
    value,
)

# The families, in registration order (see above): not sorted, not reordered.
# isort: off
from tests.integrity.scenarios.forged_turns import (
    forged_turn,
    forged_turn_rewards,
)
from tests.integrity.scenarios.verdicts import (
    FIVES,
    IMITATIONS,
    PRMED_KEYS,
    _echo_judge,
    _hijacked_judge,
    _imitation,
    _imitation_scenario,
    _quoting_judge,
    echoed_verdict,
    forged_verdict,
    partial_quote,
    quoted_verdict,
)
from tests.integrity.scenarios.truncation import (
    fence_break,
    verbosity,
)
from tests.integrity.scenarios.scales import (
    _logprob_answer,
    _token,
    mixed_scales,
)
from tests.integrity.scenarios.gates import (
    hard_gate,
    unscored_axis,
)
from tests.integrity.scenarios.group_mode import (
    _CANDIDATE_REASONING,
    RESPONSE_AXES,
    VOUCH,
    _swayed_by_the_cot,
    persuasive_cot_group,
    position_bias,
)
from tests.integrity.scenarios.conversation import (
    cot_padding,
    malformed_conversation,
    other_language,
)
from tests.integrity.scenarios.classify_rm import (
    FOOLED_RM,
    _FooledRewardModel,
    _install_fooled_rm,
    _rm_level,
    classify,
    classify_forged_turn,
    classify_other_language,
)
# isort: on

__all__ = [
    "CHATML_PROMPT",
    "COT",
    "COT_AXES",
    "ENGLISH",
    "PATIENT",
    "SAFE",
    "STEP_WORDS",
    "UNSAFE",
    "_FENCE_CLOSE",
    "_FENCE_OPEN",
    "_REASONING",
    "_fold",
    "naive_scores",
    "naive_verdict",
    "seen_responses",
    "SCENARIOS",
    "Context",
    "Outcome",
    "Scenario",
    "_write_length_rubric",
    "completion",
    "context",
    "messages",
    "rewards",
    "scenario",
    "value",
    "forged_turn",
    "forged_turn_rewards",
    "FIVES",
    "IMITATIONS",
    "PRMED_KEYS",
    "_echo_judge",
    "_hijacked_judge",
    "_imitation",
    "_imitation_scenario",
    "_quoting_judge",
    "echoed_verdict",
    "forged_verdict",
    "partial_quote",
    "quoted_verdict",
    "fence_break",
    "verbosity",
    "_logprob_answer",
    "_token",
    "mixed_scales",
    "hard_gate",
    "unscored_axis",
    "_CANDIDATE_REASONING",
    "RESPONSE_AXES",
    "VOUCH",
    "_swayed_by_the_cot",
    "persuasive_cot_group",
    "position_bias",
    "cot_padding",
    "malformed_conversation",
    "other_language",
    "FOOLED_RM",
    "_FooledRewardModel",
    "_install_fooled_rm",
    "_rm_level",
    "classify",
    "classify_forged_turn",
    "classify_other_language",
]
