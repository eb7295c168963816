"""Fences around text written by others: a per-request nonce in the markers, and forged markers neutralised.

Every text written by someone other than us (patient turns, earlier assistant turns, the judged CoT and
response, the reference) is put inside a fence whose markers carry a per-request random nonce
(``<<<RESPONSE_1f3a…>>>`` … ``<<<END_RESPONSE_1f3a…>>>``). Runs of three or more ``<`` or ``>`` inside a
fenced text are replaced by look-alike guillemets, so a judged text can neither close its fence nor open
a fake one, whatever nonce it guesses; the system prompt tells the judge that fenced content is data.
"""

from __future__ import annotations

import re
import secrets

# Runs of 3+ angle brackets, counting look-alikes (full-width, small, math) and letting invisible format
# characters (zero-width space/joiners, bidi marks, BOM, soft hyphen) sit between them: a reader that skips
# those or folds look-alikes must not see a fence marker either.
_INVISIBLE = "\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
_FENCE_RUN_OPEN = re.compile(f"[<＜﹤⟨〈](?:[{_INVISIBLE}]*[<＜﹤⟨〈]){{2,}}")
_FENCE_RUN_CLOSE = re.compile(f"[>＞﹥⟩〉](?:[{_INVISIBLE}]*[>＞﹥⟩〉]){{2,}}")
_BRACKET_COUNT = re.compile(f"[^{_INVISIBLE}]")
# Two brackets in a row (possibly with invisible characters between): the cheap pre-check of neutralise.
_MAYBE_FENCE = re.compile(f"[<＜﹤⟨〈>＞﹥⟩〉][{_INVISIBLE}]*[<＜﹤⟨〈>＞﹥⟩〉]")
# A fence as rendered here; the backreferences make the closing marker match its own opening one.
FENCE_PATTERN = re.compile(r"<<<([A-Z_]+)_([0-9a-f]{8,})>>>\n(.*?)\n<<<END_\1_\2>>>", re.DOTALL)


# The fence label of each conversation message, by role.
ROLE_LABELS = {"system": "SYSTEM_PROMPT", "user": "PATIENT_MESSAGE", "assistant": "ASSISTANT_MESSAGE"}


def new_nonce() -> str:
    """64 random bits, hex: unguessable by the author of a judged text."""
    return secrets.token_hex(8)


def neutralise(text: str) -> str:
    """Make fence markers impossible inside ``text``: runs of 3+ ``<``/``>`` (or look-alikes, with invisible
    characters between them) become ``‹``/``›``, one per bracket."""
    if not _MAYBE_FENCE.search(text):
        return text  # the usual case: one scan for a bracket run is far cheaper than the substitutions
    text = _FENCE_RUN_OPEN.sub(lambda m: "‹" * len(_BRACKET_COUNT.findall(m.group())), text)
    return _FENCE_RUN_CLOSE.sub(lambda m: "›" * len(_BRACKET_COUNT.findall(m.group())), text)


def fence(text: str, label: str, nonce: str) -> str:
    """Wrap ``text`` in nonce-carrying markers named ``label`` (upper-case letters and ``_``)."""
    return f"<<<{label}_{nonce}>>>\n{neutralise(text)}\n<<<END_{label}_{nonce}>>>"
