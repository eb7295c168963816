"""The structure-rules judge: deterministic, offline checks of a PrMed-style CoT and response.

It scores rubrics of ``kind: rules`` (the built-in ``prmed-format@1``) on the axes in :data:`KNOWN_AXES`.
No network, no model: the same sample always gets the same scores, every axis is ``ok``.

Step detection
--------------
The CoT is read line by line after NFKC normalisation (full-width ``：（）１．`` become ASCII, ``①``
becomes ``1``). A step counts as present when one of its labels (:data:`STEP_SYNONYMS`, case-insensitive)
appears as a *heading*, in one of two forms:

* **Line head.** The line starts, after optional markup (``#``, ``*``, ``_``, ``>``, bullets, dashes) and
  optional numbering (``1.``, ``1、``, ``(1)``, ``①``, ``一、``, ``(一)``, ``步骤一：``, ``第一步：``,
  ``Step 1:``, ``Step one -``, ``首先``/``其次``/``然后``/``最后``, ``First,``/``Next,``/``Finally,``
  optionally followed by ``进行``), with a label, and the label is the whole head: it is followed by
  the end of the line or a separator (``: . 。 、 , ， ; ； | ( （ ) ） ] 】 *`` or a spaced dash).
  When the line carries numbering, ``#`` or bold markup, white space also ends the label
  (``1. 情绪感知 患者很焦虑``). Prose (``主诉是胸痛三天``), list bullets (``- Reasoning about…``) and
  arrow lists (``情绪感知 → 扰动识别``) do not count.
* **Bracketed label** anywhere in a line: ``【…】``, ``〖…〗``, ``[…]``, ``<…>`` whose content (numbering
  allowed, e.g. ``【步骤一：情绪感知】``) is a label.

A label is a synonym optionally followed by ``方面/部分/环节/阶段/步骤/过程`` or ``step/stage/phase/section``;
words of an English synonym may be joined by spaces, ``_`` or ``-``. A step's position is its first
heading (line, column); later mentions are ignored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile
from judge.samples import Message, Sample
from judge.verdicts import AxisResult, AxisStatus, JudgeOutcome, Usage
from rubrics.schema import Language, Rubric

# The five PrMed CoT steps in their required order: key, Chinese name, English name.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("emotion_perception", "情绪感知", "emotion perception"),
    ("perturbation_identification", "扰动识别", "perturbation identification"),
    ("utterance_correction", "话语纠正", "utterance correction"),
    ("chief_complaint_extraction", "主诉提取", "chief complaint extraction"),
    ("medical_reasoning", "医学推理", "medical reasoning"),
)
STEP_KEYS: tuple[str, ...] = tuple(key for key, _, _ in STEPS)

# Labels accepted as headings of each step. Bare words ("情绪", "Reasoning") count only as headings,
# never in prose; sub-parts of a step (鉴别诊断, differential diagnosis) are deliberately left out so
# that they do not move a step's position.
STEP_SYNONYMS: dict[str, tuple[str, ...]] = {
    "emotion_perception": (
        "情绪感知", "情感感知", "情绪识别", "情感识别", "情绪分析", "情感分析", "情绪觉察", "情绪评估",
        "情绪判断", "情绪状态", "情绪", "情感",
        "emotion perception", "emotional perception", "emotion recognition", "emotion identification",
        "emotion detection", "emotion analysis", "emotional analysis", "emotion awareness", "emotional state",
        "sentiment analysis", "emotions", "emotion", "sentiment",
    ),
    "perturbation_identification": (
        "扰动识别", "扰动检测", "扰动分析", "扰动", "干扰识别", "干扰因素识别", "干扰信息识别", "噪声识别",
        "噪音识别", "语言扰动识别", "非规范表达识别",
        "perturbation identification", "perturbation detection", "perturbation recognition",
        "perturbation analysis", "perturbations", "perturbation", "noise identification", "noise detection",
        "disturbance identification", "distractor identification",
    ),
    "utterance_correction": (
        "话语纠正", "话语修正", "语句纠正", "表述纠正", "表达纠正", "语言纠正", "纠正表述", "话语规范化",
        "表述规范化", "规范化表述", "规范表述", "话语重述", "重述", "改写", "纠正",
        "utterance correction", "utterance normalization", "utterance normalisation", "utterance rewriting",
        "utterance rewrite", "corrected utterance", "normalized utterance", "normalised utterance",
        "rewritten utterance", "correction", "rephrasing", "rewriting", "restatement",
    ),
    "chief_complaint_extraction": (
        "主诉提取", "主诉识别", "主诉归纳", "主诉总结", "主诉确定", "提取主诉", "核心主诉", "主诉", "核心诉求",
        "核心问题", "主要诉求",
        "chief complaint extraction", "chief complaint identification", "chief complaint", "main complaint",
        "core complaint", "primary complaint", "presenting complaint", "core request", "key request",
    ),
    "medical_reasoning": (
        "医学推理", "医疗推理", "临床推理", "诊断推理", "诊疗推理", "医学分析", "临床分析", "医学推断",
        "医学判断", "推理过程", "推理",
        "medical reasoning", "clinical reasoning", "diagnostic reasoning", "medical analysis",
        "clinical analysis", "medical inference", "clinical assessment", "reasoning",
    ),
}  # fmt: skip

_CN_NUM = "[0-9一二三四五六七八九十]+"
_EN_NUM = r"(?:\d+|one|two|three|four|five|six)"
# One numbering prefix with its own separator; applied up to twice ("1. 步骤一：情绪感知").
_NUMBERING = re.compile(
    rf"""^(?:
        (?:step|stage|phase)\s*{_EN_NUM}
      | 步骤\s*{_CN_NUM}
      | 第\s*{_CN_NUM}\s*(?:步|部分|阶段|环节)?
      | \(\s*{_CN_NUM}\s*\)
      | \d+(?!\d)
      | [一二三四五六七八九十]+(?=\s*[、.])
      | 首先|其次|然后|接着|接下来|再次|随后|最后
      | first(?:ly)?|second(?:ly)?|third(?:ly)?|fourth(?:ly)?|fifth(?:ly)?|next|then|finally|lastly
    )\s*[:.、,，)\]\-–—]?\s*(?:进行|做)?\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_LEAD_MARKUP = re.compile(r"^[\s>#*_•·+\-–—]+")
_OPEN_MARKUP = re.compile(r"^[\s*_#【\[〖「<(]+")
# Where a heading's label ends; an ASCII hyphen only with white space before it, so "chief-complaint" stays whole.
_SEPARATOR = re.compile(r"\s+[-–—]|[:.。、,，;；|()（）\]】」〗>*–—]")
_SUFFIX = r"(?:\s*(?:方面|部分|环节|阶段|步骤|过程|step|stage|phase|section))?"
_BRACKETED = re.compile(r"【([^】\n]{1,40})】|〖([^〗\n]{1,40})〗|\[([^\]\n]{1,40})\]|<([^>\n]{1,40})>")


def _synonym_pattern(synonym: str) -> str:
    return r"[\s_\-]*".join(re.escape(word) for word in synonym.split())


def _step_pattern(synonyms: Sequence[str]) -> str:
    # Longest first so that "情绪感知" wins over "情绪" when both could match.
    ordered = sorted(synonyms, key=len, reverse=True)
    return "(?:" + "|".join(_synonym_pattern(s) for s in ordered) + ")" + _SUFFIX


_STEP_FULL = {key: re.compile(_step_pattern(syns), re.IGNORECASE) for key, syns in STEP_SYNONYMS.items()}
_STEP_BEFORE_SPACE = {
    key: re.compile(_step_pattern(syns) + r"(?=\s)", re.IGNORECASE) for key, syns in STEP_SYNONYMS.items()
}


@dataclass(frozen=True, slots=True)
class StepHit:
    """The first heading of one step in the CoT: which step, where (0-based line, column), the line."""

    step: str
    line: int
    column: int
    text: str

    @property
    def index(self) -> int:
        return STEP_KEYS.index(self.step)


def _strip_numbering(text: str) -> tuple[str, bool]:
    numbered = False
    for _ in range(2):
        match = _NUMBERING.match(text)
        if match is None or match.end() == 0:
            break
        text, numbered = text[match.end() :], True
    return text, numbered


def _label_step(text: str, *, marked: bool) -> str | None:
    """The step whose label ``text`` starts with (see the module docstring), or None."""
    text, numbered = _strip_numbering(text)
    opened = _OPEN_MARKUP.match(text)
    if opened is not None:
        text, marked = text[opened.end() :], marked or bool(opened.group().strip())
    marked = marked or numbered
    cut = _SEPARATOR.search(text)
    head = (text[: cut.start()] if cut else text).strip().rstrip("_")
    for key, pattern in _STEP_FULL.items():
        if pattern.fullmatch(head):
            return key
    if marked:
        # "1. 情绪感知 患者很焦虑": with numbering or markup, white space may end the label too.
        best: tuple[int, str] | None = None
        for key, pattern in _STEP_BEFORE_SPACE.items():
            match = pattern.match(head)
            if match is not None and (best is None or match.end() > best[0]):
                best = (match.end(), key)
        if best is not None:
            return best[1]
    return None


def find_steps(reasoning: str) -> list[StepHit]:
    """The PrMed steps whose headings appear in ``reasoning``, each at its first heading, in text order."""
    first: dict[str, StepHit] = {}

    def keep(step: str | None, line_no: int, column: int, line: str) -> None:
        if step is None:
            return
        hit = StepHit(step=step, line=line_no, column=column, text=line.strip()[:120])
        seen = first.get(step)
        if seen is None or (hit.line, hit.column) < (seen.line, seen.column):
            first[step] = hit

    for line_no, raw in enumerate(reasoning.splitlines()):
        line = unicodedata.normalize("NFKC", raw)
        if not line.strip():
            continue
        lead = _LEAD_MARKUP.match(line)
        # A heading mark (#, bold) lets white space end a label; a bare list bullet does not.
        marked = lead is not None and any(mark in lead.group() for mark in ("#", "**", "__"))
        keep(_label_step(line[lead.end() :] if lead else line, marked=marked), line_no, 0, line)
        for match in _BRACKETED.finditer(line):
            inner = next(group for group in match.groups() if group is not None)
            keep(_label_step(inner, marked=True), line_no, match.start(), line)
    return sorted(first.values(), key=lambda hit: (hit.line, hit.column))


def count_inversions(order: Sequence[int]) -> int:
    """Pairs ``i < j`` with ``order[i] > order[j]``: 0 for a sorted sequence."""
    return sum(1 for i in range(len(order)) for j in range(i + 1, len(order)) if order[i] > order[j])


# --- text measures ---------------------------------------------------------------------------------

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_WORD = re.compile(r"[^\W_]+")
_LETTER_WORD = re.compile(r"[^\W\d_]+")

# Content units for response_present: a Chinese character or a word (letters/digits) each count one.
RESPONSE_UNIT_LEVELS = ((30, 5), (15, 4), (5, 3), (1, 2))
MIN_RESPONSE_UNITS = RESPONSE_UNIT_LEVELS[0][0]

# Han share = Han characters / (Han characters + Latin-letter words). Chinese text often embeds English
# terms (CT, MRI, GERD) while English text rarely embeds Han, hence the asymmetric bands.
ZH_MIN_SHARE = 0.6
EN_MAX_SHARE = 0.2
LEAN_SHARE = 0.4

TextLanguage = Literal["zh", "en", "mixed", "none"]


def content_units(text: str) -> int:
    """Han characters plus words of letters/digits; punctuation, emoji and white space count nothing."""
    han = len(_HAN.findall(text))
    return han + len(_WORD.findall(_HAN.sub(" ", text)))


def han_share(text: str) -> float | None:
    """Share of Han characters among Han characters and letter words; None for text with neither."""
    han = len(_HAN.findall(text))
    words = len(_LETTER_WORD.findall(_HAN.sub(" ", text)))
    return han / (han + words) if han + words else None


def text_language(text: str) -> TextLanguage:
    share = han_share(text)
    if share is None:
        return "none"
    if share >= ZH_MIN_SHARE:
        return "zh"
    if share <= EN_MAX_SHARE:
        return "en"
    return "mixed"


def last_patient_message(messages: Sequence[Message]) -> str | None:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return None


# --- the axes ----------------------------------------------------------------------------------------

Rationale = tuple[int, str]


def _step_names(keys: Sequence[str], language: Language) -> str:
    names = {key: (zh if language == "zh" else en) for key, zh, en in STEPS}
    return ("、" if language == "zh" else ", ").join(names[key] for key in keys)


def _arrow_names(hits: Sequence[StepHit], language: Language) -> str:
    names = {key: (zh if language == "zh" else en) for key, zh, en in STEPS}
    return " → ".join(names[hit.step] for hit in hits)


def score_steps_present(sample: Sample, language: Language) -> Rationale:
    """5 = all five steps, 4 = four, 3 = three, 2 = one or two, 1 = none."""
    if not sample.reasoning:
        return 1, "思维链为空，未找到任何步骤" if language == "zh" else "The chain of thought is empty; no steps found"
    hits = find_steps(sample.reasoning)
    found = len(hits)
    score = {5: 5, 4: 4, 3: 3, 2: 2, 1: 2}.get(found, 1)
    found_keys = {hit.step for hit in hits}
    missing = [key for key in STEP_KEYS if key not in found_keys]
    if language == "zh":
        text = f"找到{found}/5个步骤"
        return score, text + (f"，缺少：{_step_names(missing, language)}" if missing else "")
    text = f"Found {found}/5 steps"
    return score, text + (f"; missing: {_step_names(missing, language)}" if missing else "")


def score_steps_order(sample: Sample, language: Language) -> Rationale:
    """In order: 5 with ≥4 steps found, 4 with 2–3; otherwise 3/2/1 for 1/2/≥3 inversions; 1 if <2 found."""
    hits = find_steps(sample.reasoning)
    if len(hits) < 2:
        if language == "zh":
            return 1, f"找到的步骤少于2个（{len(hits)}个），无法判断顺序"
        return 1, f"Fewer than two steps found ({len(hits)}); no order to check"
    inversions = count_inversions([hit.index for hit in hits])
    score = (5 if len(hits) >= 4 else 4) if inversions == 0 else max(1, 4 - inversions)
    if language == "zh":
        return score, f"步骤顺序：{_arrow_names(hits, language)}（{len(hits)}个步骤，逆序对{inversions}个）"
    return score, f"Step order: {_arrow_names(hits, language)} ({len(hits)} steps, {inversions} inversion(s))"


def score_response_present(sample: Sample, language: Language) -> Rationale:
    """By content units: 0 -> 1, 1–4 -> 2, 5–14 -> 3, 15–29 -> 4, ≥30 -> 5."""
    units = content_units(sample.response)
    score = next((level for minimum, level in RESPONSE_UNIT_LEVELS if units >= minimum), 1)
    if units == 0:
        return 1, "最终回复为空或没有实际内容" if language == "zh" else "The final response is empty or has no content"
    if language == "zh":
        return score, f"最终回复有{units}个内容单位（汉字或单词），满分需至少{MIN_RESPONSE_UNITS}个"
    return score, f"The final response has {units} content units 5 needs ≥{MIN_RESPONSE_UNITS}"


_LANGUAGE_NAMES: dict[TextLanguage, tuple[str, str]] = {
    "zh": ("中文", "Chinese"),
    "en": ("英文", "English"),
    "mixed": ("中英混合", "mixed Chinese/English"),
    "none": ("无文字", "no text"),
}


def score_language_match(sample: Sample, language: Language) -> Rationale:
    """5 same language, 4/2 a mixed response leaning to / away from it, 3 ambiguous patient, 1 mismatch."""
    patient_text = last_patient_message(sample.messages) or ""
    patient = text_language(patient_text)
    response = text_language(sample.response)
    share = han_share(sample.response)

    def name(lang: TextLanguage) -> str:
        return _LANGUAGE_NAMES[lang][0 if language == "zh" else 1]

    if response == "none":
        score = 1
    elif patient in ("mixed", "none"):
        score = 3
    elif response == patient:
        score = 5
    elif response == "mixed":
        leaning = "zh" if share is not None and share >= LEAN_SHARE else "en"
        score = 4 if leaning == patient else 2
    else:
        score = 1
    if language == "zh":
        return score, f"患者最后一条消息：{name(patient)}；回复：{name(response)}"
    return score, f"Patient's last message: {name(patient)}; response: {name(response)}"


AXIS_RULES: dict[str, Callable[[Sample, Language], Rationale]] = {
    "steps_present": score_steps_present,
    "steps_order": score_steps_order,
    "response_present": score_response_present,
    "language_match": score_language_match,
}
KNOWN_AXES = frozenset(AXIS_RULES)


class RulesJudge:
    """Scores ``kind: rules`` rubrics deterministically; never fails an axis, never calls out (calls=0)."""

    def __init__(self, profile: JudgeProfile) -> None:
        self.profile = profile

    def check(self, rubric: Rubric) -> None:
        """Raise :class:`JudgeUnavailable` unless this judge can score every axis of ``rubric``."""
        if rubric.kind != "rules":
            raise JudgeUnavailable(
                f"judge {self.profile.name!r} scores only rubrics of kind 'rules'; "
                f"rubric {rubric.ref!r} is of kind {rubric.kind!r}",
                field="rubric",
            )
        unknown = [key for key in rubric.axis_keys if key not in KNOWN_AXES]
        if unknown:
            raise JudgeUnavailable(
                f"judge {self.profile.name!r} cannot score axes {unknown} of rubric {rubric.ref!r}; "
                f"known axes: {sorted(KNOWN_AXES)}",
                field="rubric",
            )

    def score_sync(self, sample: Sample, rubric: Rubric) -> JudgeOutcome:
        self.check(rubric)
        # Rationales in the profile's language, else the patient's (an English sample under a Chinese rubric
        # reads English reasons), else the rubric's.
        patient = text_language(last_patient_message(sample.messages) or "")
        sample_language: Language | None = patient if patient in ("zh", "en") else None
        language: Language = self.profile.language or sample_language or rubric.language
        axes: dict[str, AxisResult] = {}
        for key in rubric.axis_keys:
            score, rationale = AXIS_RULES[key](sample, language)
            axes[key] = AxisResult(score=score, status=AxisStatus.ok, rationale=rationale)
        return JudgeOutcome(axes=axes, usage=Usage(calls=0))

    async def score(self, sample: Sample, rubric: Rubric) -> JudgeOutcome:
        return self.score_sync(sample, rubric)

    async def aclose(self) -> None:
        return None
