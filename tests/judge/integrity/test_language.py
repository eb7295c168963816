"""The language of a text and a response that is not in the patient's language."""

from __future__ import annotations

import pytest

from judge.integrity.language import dominant_language, language_mismatch

ZH = "俺娘这两天心口窝疼得厉害，咋整啊？"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        (ZH, "zh"),
        ("建议服用布洛芬（ibuprofen）400 mg，必要时就医。", "zh"),
        ("Please call 120 right away and keep her lying down.", "en"),
        ("Пожалуйста, немедленно вызовите скорую помощь.", "other"),
        ("すぐに救急車を呼んでください。", "other"),
        ("好的", None),  # too short to tell
        ("OK 好", None),
        ("12345 !!!", None),
    ],
)
def test_dominant_language(text: str, language: str | None) -> None:
    assert dominant_language(text) == language


def test_mismatch_needs_both_languages_clear_and_different() -> None:
    assert language_mismatch(ZH, "Please call 120 right away and keep her lying down.")
    assert not language_mismatch(ZH, "请立即拨打120，让老人平躺休息。")
    assert not language_mismatch(ZH, "OK")  # too short to say: not a mismatch
    assert not language_mismatch("My mother has chest pain, what do I do?", "Call 120 now, it may be a heart attack.")
