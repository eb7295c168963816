"""Which language a text is written in (Chinese or English, the service's two), and mismatches between texts.

A policy judged mostly on content can answer in another language and lose little; the patient cannot read it.
The check is by script: the share of Han characters among letters. It needs no model, is deterministic and
fast, and decides only clear cases (``None`` when a text is too short or too mixed to say).
"""

from __future__ import annotations

import unicodedata
from typing import Literal

LanguageCode = Literal["zh", "en", "other"]
# Fewer weighted letters than this: too short to say.
_MIN_LETTERS = 8
# A share of letters at or above this decides the language; English also needs almost no Han.
_DECIDES, _EN_MAX_HAN = 0.3, 0.05


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF or 0xF900 <= code <= 0xFAFF
    )


def dominant_language(text: str) -> LanguageCode | None:
    """``zh``, ``en``, ``other`` (another script: Cyrillic, Kana, Arabic…), or None when too short or too mixed."""
    han = latin = other = 0
    for ch in text:
        if _is_han(ch):
            han += 1
        elif ch.isalpha():
            if "LATIN" in unicodedata.name(ch, ""):
                latin += 1
            else:
                other += 1
    letters = han + latin + other
    # A Han character carries about a word; count them triple so that short Chinese answers still decide.
    if letters == 0 or han * 3 + latin + other < _MIN_LETTERS:
        return None
    if other / letters >= _DECIDES:
        return "other"
    if han / letters >= _DECIDES:
        return "zh"
    if han / letters <= _EN_MAX_HAN and latin / letters >= 1 - _DECIDES:
        return "en"
    return None


def language_mismatch(patient_text: str, response: str) -> bool:
    """True when both languages are clear and differ: the patient wrote one, the response is in another."""
    patient = dominant_language(patient_text)
    answer = dominant_language(response)
    return patient is not None and answer is not None and patient != answer
