"""Which language a text is written in (Chinese or English, the service's two), and mismatches between texts.

A policy judged mostly on content can answer in another language and lose little; the patient cannot read it.
The check is by script: the share of Han characters among letters. It needs no model, is deterministic and
fast, and decides only clear cases (``None`` when a text is too short or too mixed to say).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

LanguageCode = Literal["zh", "en", "other"]
# Fewer weighted letters than this: too short to say.
_MIN_LETTERS = 8
# A share of letters at or above this decides the language; English also needs almost no Han.
_DECIDES, _EN_MAX_HAN = 0.3, 0.05


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LETTER = re.compile(r"[^\W\d_]")


def _count(pattern: re.Pattern[str], text: str) -> int:
    return len(text) - len(pattern.sub("", text))


@lru_cache(maxsize=4096)
def dominant_language(text: str) -> LanguageCode | None:
    """``zh``, ``en``, ``other`` (another script: Cyrillic, Kana, Arabic…), or None when too short or too mixed."""
    # Counted by regular expressions (C speed) and memoised: this runs for every rewarded item of a rubric with a
    # language gate, and cached RL batches and GRPO groups repeat the same texts.
    letters = _count(_LETTER, text)
    if letters == 0:
        return None
    han = _count(_HAN, text)
    latin = _count(_LATIN, text)
    other = max(0, letters - han - latin)
    # A Han character carries about a word; count them triple so that short Chinese answers still decide.
    if han * 3 + latin + other < _MIN_LETTERS:
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
