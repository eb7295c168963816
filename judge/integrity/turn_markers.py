"""Chat-template turn markers of the chat families the service knows.

A judged completion that contains a turn marker can forge a conversation: ``…<|im_end|>\n<|im_start|>user\n…``
invents a patient turn, so that a splitter (or the judge itself) takes the unsafe first answer for context and
judges only a harmless tail. Such a turn is refused, never judged in part.

Detection folds the text first (NFKC, zero-width and other format characters removed), so markers written with
full-width bars (``<｜User｜>``) or broken up by zero-width spaces are found too.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

# family -> markers that open, close or separate turns in that family's chat template.
TURN_MARKERS: dict[str, tuple[str, ...]] = {
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "llama2": ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"),
    "gemma": ("<start_of_turn>", "<end_of_turn>"),
    # DeepSeek V2/V3/R1 write these with full-width bars and ▁; NFKC folds the bars to "|".
    "deepseek": ("<|User|>", "<|Assistant|>", "<|end▁of▁sentence|>"),
    "phi3": ("<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
    "glm": ("<|observation|>", "[gMASK]<sop>"),
    "mistral": ("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_RESULTS]"),
}


@cache
def _pattern() -> re.Pattern[str]:
    markers = sorted({m.lower() for family in TURN_MARKERS.values() for m in family}, key=len, reverse=True)
    return re.compile("|".join(re.escape(m) for m in markers))


@cache
def _family_of() -> dict[str, str]:
    return {marker.lower(): family for family, markers in TURN_MARKERS.items() for marker in markers}


# Every marker starts with one of these once folded.
_MARKER_STARTS = ("<", "[")


@cache
def _character_classes() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Two character classes over all of Unicode, built once (~0.3 s, at start-up: see ``warm_up``).

    - format characters (category Cf: zero-width spaces and joiners, bidi controls, …): removed by one C-level
      substitution instead of a category look-up per character;
    - characters whose NFKC form holds a marker's first character ("<", "＜", "﹤", "[", "［", …). NFKC decomposes
      character by character and composition never yields "<" or "[", so a text without any of them has no marker
      after folding: one C-level scan clears the common case without normalising it.

    The check runs on every judged text of every request, cache hits included; the per-character scan it replaces
    was half of a cached item's CPU.
    """
    formats, starts = [], []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        if unicodedata.category(ch) == "Cf":
            formats.append(ch)
        if ch in _MARKER_STARTS or (
            unicodedata.decomposition(ch) and any(s in unicodedata.normalize("NFKC", ch) for s in _MARKER_STARTS)
        ):
            starts.append(ch)
    return (
        re.compile("[" + "".join(re.escape(ch) for ch in formats) + "]"),
        re.compile("[" + "".join(re.escape(ch) for ch in starts) + "]"),
    )


def warm_up() -> None:
    """Build the character classes now (the app's start-up) rather than in the first request."""
    _character_classes()
    _pattern()


def fold(text: str) -> str:
    """``text`` as a tokenizer-agnostic reader sees it: NFKC, no format characters (zero-width…), lower case."""
    return _character_classes()[0].sub("", unicodedata.normalize("NFKC", text)).lower()


def find_turn_markers(text: str) -> list[str]:
    """The chat families whose turn markers appear in ``text`` (sorted; empty when none does)."""
    if not text:
        return []
    if _character_classes()[1].search(text) is None:
        return []
    folded = fold(text)
    families = _family_of()
    return sorted({families[match.group()] for match in _pattern().finditer(folded)})


def turn_marker_message(field: str, families: list[str]) -> str:
    """The refusal message for a judged text with turn markers."""
    shown = ", ".join(families)
    return (
        f"turn_markers: {field} contains chat turn markers ({shown}); a judged turn cannot open or close turns, "
        "so it is refused rather than judged in part"
    )
