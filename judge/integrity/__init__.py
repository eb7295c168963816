"""Integrity guards: checks that keep an optimising policy from raising its reward without a better answer.

- :mod:`.turn_markers`: chat-template turn markers in a judged turn (a forged patient turn).
- :mod:`.conversation`: conversations that cannot be judged (no patient turn before the judged one).
- :mod:`.language`: the language of a text, and a response that is not in the patient's language.
- :mod:`.padding`: a CoT padded with the rubric's own axis titles.
- :mod:`.facts`: what aggregation needs to know about a sample besides its scores (original lengths,
  language mismatch), computed in one place for every route.

Refusals carry a short machine-readable reason (``turn_markers``, ``conversation``) so that trainers can count
them; see ``docs/reward-integrity.md`` for the exploits each guard closes.
"""

from judge.integrity.conversation import conversation_problem
from judge.integrity.facts import OutputFacts, output_facts
from judge.integrity.language import dominant_language, language_mismatch
from judge.integrity.padding import keyword_padding
from judge.integrity.turn_markers import TURN_MARKERS, find_turn_markers

__all__ = [
    "TURN_MARKERS",
    "OutputFacts",
    "conversation_problem",
    "dominant_language",
    "find_turn_markers",
    "keyword_padding",
    "language_mismatch",
    "output_facts",
]
