"""The structure-rules judge: step detection, each axis rule in Chinese and English, the prmed-format rubric."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from judge.backends.base import JudgeBackend
from judge.backends.rules import (
    KNOWN_AXES,
    STEP_KEYS,
    RulesJudge,
    content_units,
    count_inversions,
    find_steps,
    han_share,
    text_language,
)
from judge.errors import JudgeUnavailable
from judge.profiles import JudgeProfile
from judge.samples import Message, Sample, SampleIn, normalise
from judge.verdicts import AxisStatus, JudgeOutcome
from rubrics.schema import Rubric

ROOT = Path(__file__).resolve().parents[2]
PRMED_FORMAT = ROOT / "rubrics" / "builtin" / "prmed-format-1.yaml"

ZH_PATIENT = "俺娘这两天心口窝疼得厉害，还老是喘不上气，咋整啊😭"
EN_PATIENT = "my chest's been kinda tight n i cant catch my breath on stairs lately, prob nothing right??"

ZH_COT = """1. 情绪感知：患者非常着急（“咋整啊”+哭泣表情）。
2. 扰动识别：“俺娘”＝母亲，“心口窝”＝胸骨下段。
3. 话语纠正：患者母亲近两天胸痛伴呼吸困难。
4. 主诉提取：胸痛2天伴呼吸困难。
5. 医学推理：需首先排除急性冠脉综合征、肺栓塞。"""

EN_COT = """Step 1: Emotion perception - the patient downplays the symptom but is worried.
Step 2: Perturbation identification - informal spelling, vague time frame.
Step 3: Utterance correction - recent exertional chest tightness and dyspnoea.
Step 4: Chief complaint extraction - exertional chest tightness.
Step 5: Medical reasoning - angina until proven otherwise."""

ZH_RESPONSE = (
    "别着急。心口窝疼得厉害又喘不上气，可能是心脏或肺部的急症，比如心肌缺血。"
    "建议现在就拨打120或立即去最近医院的急诊，路上让她保持休息，不要走动。"
)
EN_RESPONSE = (
    "Chest tightness and breathlessness when you climb stairs can be a sign of angina, even at your age. "
    "Please see a doctor in the next few days for an ECG, and call emergency services if it comes on at rest."
)


def _rubric() -> Rubric:
    # Until rubrics.loader lands, the file is validated straight against the schema.
    return Rubric.model_validate(yaml.safe_load(PRMED_FORMAT.read_text(encoding="utf-8")))


def _sample(patient: str, reasoning: str, response: str, *, messages: list[Message] | None = None) -> Sample:
    return normalise(
        SampleIn(messages=messages or [Message(role="user", content=patient)], reasoning=reasoning, response=response)
    )


@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return _rubric()


@pytest.fixture(scope="module")
def judge() -> RulesJudge:
    return RulesJudge(JudgeProfile(name="rules", backend="rules"))


async def _scores(judge: RulesJudge, sample: Sample, rubric: Rubric) -> dict[str, int | None]:
    outcome = await judge.score(sample, rubric)
    return {key: result.score for key, result in outcome.axes.items()}


# --- the rubric and the protocol ----------------------------------------------------------------------


def test_prmed_format_rubric_axes_match_the_rules(rubric: Rubric) -> None:
    assert rubric.ref == "prmed-format@1"
    assert rubric.kind == "rules"
    assert rubric.language == "zh"
    assert set(rubric.axis_keys) == KNOWN_AXES
    assert {axis.key: axis.layer for axis in rubric.axes} == {
        "steps_present": "cot",
        "steps_order": "cot",
        "response_present": "response",
        "language_match": "cross",
    }
    assert rubric.pass_policy.threshold == 4


def test_rules_judge_is_a_backend(judge: RulesJudge) -> None:
    assert isinstance(judge, JudgeBackend)


async def test_outcome_covers_every_axis_with_status_ok_and_no_calls(judge: RulesJudge, rubric: Rubric) -> None:
    outcome = await judge.score(_sample(ZH_PATIENT, ZH_COT, ZH_RESPONSE), rubric)
    assert isinstance(outcome, JudgeOutcome)
    assert list(outcome.axes) == rubric.axis_keys
    assert all(result.status is AxisStatus.ok for result in outcome.axes.values())
    assert all(result.rationale for result in outcome.axes.values())
    assert outcome.complete
    assert outcome.usage.calls == 0
    assert outcome.error is None


async def test_missing_cot_is_a_low_score_not_an_error(judge: RulesJudge, rubric: Rubric) -> None:
    outcome = await judge.score(_sample(ZH_PATIENT, "", ZH_RESPONSE), rubric)
    assert outcome.complete
    assert outcome.axes["steps_present"].score == 1
    assert outcome.axes["steps_order"].score == 1


async def test_non_rules_rubric_is_refused(judge: RulesJudge, rubric: Rubric) -> None:
    llm_rubric = rubric.model_copy(update={"kind": "llm", "name": "prmed"})
    with pytest.raises(JudgeUnavailable) as info:
        await judge.score(_sample(ZH_PATIENT, ZH_COT, ZH_RESPONSE), llm_rubric)
    assert info.value.field == "rubric"
    assert "prmed@1" in info.value.message


async def test_rules_rubric_with_unknown_axis_is_refused(judge: RulesJudge, rubric: Rubric) -> None:
    data = rubric.model_dump(mode="json")
    data["axes"][0]["key"] = "empathy"
    odd = Rubric.model_validate(data)
    with pytest.raises(JudgeUnavailable, match="empathy") as info:
        await judge.score(_sample(ZH_PATIENT, ZH_COT, ZH_RESPONSE), odd)
    assert info.value.field == "rubric"
    assert "prmed-format@1" in info.value.message


async def test_a_subset_of_known_axes_is_scored(judge: RulesJudge, rubric: Rubric) -> None:
    data = rubric.model_dump(mode="json")
    data["axes"] = [axis for axis in data["axes"] if axis["key"] == "steps_present"]
    data["reward_policy"]["gates"] = []
    subset = Rubric.model_validate(data)
    assert await _scores(judge, _sample(ZH_PATIENT, ZH_COT, ZH_RESPONSE), subset) == {"steps_present": 5}


# --- all five steps in order ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patient", "cot", "response"),
    [(ZH_PATIENT, ZH_COT, ZH_RESPONSE), (EN_PATIENT, EN_COT, EN_RESPONSE)],
    ids=["zh", "en"],
)
async def test_complete_ordered_cot_scores_five_everywhere(
    judge: RulesJudge, rubric: Rubric, patient: str, cot: str, response: str
) -> None:
    assert await _scores(judge, _sample(patient, cot, response), rubric) == dict.fromkeys(rubric.axis_keys, 5)


@pytest.mark.parametrize(
    "cot",
    [
        "【情绪感知】焦虑。【扰动识别】方言。\n【步骤三：话语纠正】母亲胸痛。\n【主诉】胸痛 【医学推理】排除心梗。",
        "步骤一：情感识别\n步骤二：干扰识别\n第三步：表述纠正\n第四步：提取主诉\n第五步：临床推理",
        "### 一、情绪感知\n### 二、扰动识别\n### 三、话语纠正\n### 四、主诉提取\n### 五、医学推理",
        "１．情绪感知：焦虑\n（２）扰动识别：方言\n③话语纠正：略\n**4. 主诉提取**：胸痛\n**医学推理**\n分析如下",
        "首先进行情绪感知：焦虑\n其次，扰动识别：方言\n然后话语纠正：略\n接着主诉提取：胸痛\n最后，医学推理：排除心梗",
        "**Emotion perception**\n**Perturbation identification**\n**Utterance correction**\n"
        "**Chief complaint**\n**Clinical reasoning**",
        "Step One: Emotion Perception\nStep 2 – Perturbation Detection\nStep 3. Utterance normalization\n"
        "Step 4) Chief-complaint extraction\nStep 5: Medical reasoning step",
        "<emotion_perception>anxious</emotion_perception>\n[Perturbation identification] slang\n"
        "情绪感知（Emotion perception）：重复出现不影响\n3. Correction: rewritten\n- Chief complaint: chest pain\n"
        "Reasoning: ACS first",
    ],
    ids=["zh-brackets", "zh-steps-synonyms", "zh-markdown-cn-numerals", "zh-fullwidth", "zh-ordinals", "en-bold",
         "en-steps-variants", "mixed-markers"],
)  # fmt: skip
def test_heading_variants_are_recognised_in_order(cot: str) -> None:
    assert [hit.step for hit in find_steps(cot)] == list(STEP_KEYS)


@pytest.mark.parametrize(
    "cot",
    [
        "主诉是胸痛三天，伴有气短。我们需要做推理。",
        "Reasoning from the symptoms, this looks like angina.",
        "情绪感知 → 扰动识别 → 话语纠正 → 主诉提取 → 医学推理",
        "- Reasoning about the dose comes later",
        "情绪稳定，无明显焦虑",
        "The emotion perception step is skipped here.",
    ],
    ids=["zh-prose", "en-prose", "arrow-list", "bullet-prose", "zh-word-prefix", "en-mid-sentence"],
)
def test_mentions_in_prose_are_not_headings(cot: str) -> None:
    assert find_steps(cot) == []


def test_a_step_is_placed_at_its_first_heading() -> None:
    hits = find_steps("情绪感知：焦虑\n医学推理：待定\n主诉提取：胸痛\n医学推理：排除心梗")
    assert [(hit.step, hit.line) for hit in hits] == [
        ("emotion_perception", 0),
        ("medical_reasoning", 1),
        ("chief_complaint_extraction", 2),
    ]


# --- steps_present -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kept", "expected"),
    [(5, 5), (4, 4), (3, 3), (2, 2), (1, 2), (0, 1)],
)
@pytest.mark.parametrize("language", ["zh", "en"])
async def test_steps_present_counts_found_steps(
    judge: RulesJudge, rubric: Rubric, language: str, kept: int, expected: int
) -> None:
    patient, cot, response = (
        (ZH_PATIENT, ZH_COT, ZH_RESPONSE) if language == "zh" else (EN_PATIENT, EN_COT, EN_RESPONSE)
    )
    # Keep the first `kept` step lines; the rest become prose without a heading.
    lines = cot.splitlines()
    kept_cot = "\n".join(lines[:kept] + ["进一步分析。" if language == "zh" else "More thoughts."] * (5 - kept))
    scores = await _scores(judge, _sample(patient, kept_cot, response), rubric)
    assert scores["steps_present"] == expected


async def test_steps_present_rationale_names_missing_steps(judge: RulesJudge, rubric: Rubric) -> None:
    cot = "\n".join(line for line in ZH_COT.splitlines() if "话语纠正" not in line)
    outcome = await judge.score(_sample(ZH_PATIENT, cot, ZH_RESPONSE), rubric)
    assert outcome.axes["steps_present"].score == 4
    assert outcome.axes["steps_present"].rationale == "找到4/5个步骤，缺少：话语纠正"


async def test_rationale_follows_profile_language(rubric: Rubric) -> None:
    english = RulesJudge(JudgeProfile(name="rules-en", backend="rules", language="en"))
    cot = "\n".join(line for line in EN_COT.splitlines() if "Utterance" not in line)
    outcome = await english.score(_sample(EN_PATIENT, cot, EN_RESPONSE), rubric)
    assert outcome.axes["steps_present"].rationale == "Found 4/5 steps; missing: utterance correction"


async def test_rationale_follows_the_samples_language_without_a_profile_language(
    judge: RulesJudge, rubric: Rubric
) -> None:
    assert judge.profile.language is None and rubric.language == "zh"
    cot = "\n".join(line for line in EN_COT.splitlines() if "Utterance" not in line)
    english = await judge.score(_sample(EN_PATIENT, cot, EN_RESPONSE), rubric)
    assert english.axes["steps_present"].rationale == "Found 4/5 steps; missing: utterance correction"
    chinese_cot = "\n".join(line for line in ZH_COT.splitlines() if "话语纠正" not in line)
    chinese = await judge.score(_sample(ZH_PATIENT, chinese_cot, ZH_RESPONSE), rubric)
    assert chinese.axes["steps_present"].rationale == "找到4/5个步骤，缺少：话语纠正"


# --- steps_order ---------------------------------------------------------------------------------------


def _reorder(cot: str, order: list[int]) -> str:
    lines = cot.splitlines()
    return "\n".join(lines[i] for i in order)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ([0, 1, 2, 3, 4], 5),  # in order, five found
        ([0, 1, 3, 4], 5),  # in order, four found
        ([0, 2, 4], 4),  # in order, three found
        ([1, 3], 4),  # in order, two found
        ([1, 0, 2, 3, 4], 3),  # one inversion
        ([3, 1], 3),  # one inversion, two found
        ([0, 3, 1, 2, 4], 2),  # two inversions
        ([2, 1, 0, 3, 4], 1),  # three inversions
        ([4, 3, 2, 1, 0], 1),  # fully reversed: ten inversions
        ([2], 1),  # fewer than two found
    ],
)
@pytest.mark.parametrize("language", ["zh", "en"])
async def test_steps_order_by_inversions(
    judge: RulesJudge, rubric: Rubric, language: str, order: list[int], expected: int
) -> None:
    patient, cot, response = (
        (ZH_PATIENT, ZH_COT, ZH_RESPONSE) if language == "zh" else (EN_PATIENT, EN_COT, EN_RESPONSE)
    )
    scores = await _scores(judge, _sample(patient, _reorder(cot, order), response), rubric)
    assert scores["steps_order"] == expected
    assert scores["steps_present"] == {5: 5, 4: 4, 3: 3, 2: 2, 1: 2}[len(order)]


@pytest.mark.parametrize(
    ("order", "inversions"),
    [([], 0), ([0], 0), ([0, 1, 2], 0), ([1, 0], 1), ([0, 3, 1, 2, 4], 2), ([4, 3, 2, 1, 0], 10)],
)
def test_count_inversions(order: list[int], inversions: int) -> None:
    assert count_inversions(order) == inversions


# --- response_present ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("", 1),
        ("……！！😭", 1),
        ("好的。", 2),
        ("OK, sure.", 2),
        ("建议尽快去医院。", 3),
        ("Try resting in a dark room.", 3),
        ("建议您尽快带母亲去医院急诊，不要耽误。", 4),
        ("You should take your mother to the emergency department right now, please do not wait.", 4),
        (ZH_RESPONSE, 5),
        (EN_RESPONSE, 5),
    ],
)
async def test_response_present_by_content_units(
    judge: RulesJudge, rubric: Rubric, response: str, expected: int
) -> None:
    patient = EN_PATIENT if response.isascii() else ZH_PATIENT
    scores = await _scores(judge, _sample(patient, ZH_COT, response), rubric)
    assert scores["response_present"] == expected


def test_content_units_count_han_characters_and_words() -> None:
    assert content_units("建议查CT和B超，5 mg每天2次😭") == 13  # 8 Han + CT, B, 5, mg, 2
    assert content_units("  ...!!  ") == 0


# --- language_match ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patient", "response", "expected"),
    [
        (ZH_PATIENT, ZH_RESPONSE, 5),
        (EN_PATIENT, EN_RESPONSE, 5),
        (ZH_PATIENT, EN_RESPONSE, 1),  # English reply to a Chinese patient
        (EN_PATIENT, ZH_RESPONSE, 1),
        (ZH_PATIENT, "建议查一下CT、心电图和肌钙蛋白，排除ACS，必要时住院观察。", 5),  # terms stay Chinese
        (ZH_PATIENT, "建议去医院 check 一下 your heart rate 和 blood pressure", 4),  # mixed, leaning Chinese
        (ZH_PATIENT, "You should go to the 急诊室 right now", 2),  # mixed, leaning English
        ("我最近 always feel super tired，heart rate 也经常 above 100，is this serious？", ZH_RESPONSE, 3),
        ("😭😭😭", ZH_RESPONSE, 3),  # no text in the patient message
        (ZH_PATIENT, "", 1),
        (ZH_PATIENT, "120!!!", 1),  # no letters or Han characters in the response
    ],
    ids=["zh-zh", "en-en", "zh-en", "en-zh", "zh-terms", "zh-mixed-lean-zh", "zh-mixed-lean-en", "mixed-patient",
         "emoji-patient", "empty-response", "digits-response"],
)  # fmt: skip
async def test_language_match(judge: RulesJudge, rubric: Rubric, patient: str, response: str, expected: int) -> None:
    scores = await _scores(judge, _sample(patient, ZH_COT, response), rubric)
    assert scores["language_match"] == expected


async def test_language_match_uses_the_last_patient_message(judge: RulesJudge, rubric: Rubric) -> None:
    messages = [
        Message(role="system", content="You are a careful physician assistant."),
        Message(role="user", content="I have a headache."),
        Message(role="assistant", content="How long has it lasted?"),
        Message(role="user", content="三天了，吃了布洛芬也不管用"),
    ]
    scores = await _scores(judge, _sample("", ZH_COT, ZH_RESPONSE, messages=messages), rubric)
    assert scores["language_match"] == 5
    scores = await _scores(judge, _sample("", ZH_COT, EN_RESPONSE, messages=messages), rubric)
    assert scores["language_match"] == 1


def test_text_language_bands() -> None:
    assert text_language(ZH_PATIENT) == "zh"
    assert text_language(EN_PATIENT) == "en"
    assert text_language("我最近 always feel super tired") == "mixed"
    assert text_language("😭 120") == "none"
    assert han_share("头疼 headache") == pytest.approx(2 / 3)
    assert han_share("") is None


# --- determinism and the think block ---------------------------------------------------------------------


async def test_completion_with_think_block_is_scored_like_split_fields(judge: RulesJudge, rubric: Rubric) -> None:
    split = _sample(ZH_PATIENT, ZH_COT, ZH_RESPONSE)
    joined = normalise(
        SampleIn(
            messages=[Message(role="user", content=ZH_PATIENT)],
            completion=f"<think>\n{ZH_COT}\n</think>\n{ZH_RESPONSE}",
        )
    )
    first = await judge.score(split, rubric)
    second = await judge.score(joined, rubric)
    assert first == second
    assert {key: result.score for key, result in first.axes.items()} == dict.fromkeys(rubric.axis_keys, 5)
