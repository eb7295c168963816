"""Group-relative judging (``mode: group``): one judge call sees all responses to one prompt.

Prompt and parser on their own, then the OpenAI judge and the Scorer against the loopback server and a real store.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.backends.factory import build_backend
from judge.backends.openai.answer_format import AXES_LINE_PREFIX, CANDIDATES_LINE_PREFIX, group_response_format
from judge.backends.openai.fences import FENCE_PATTERN
from judge.backends.openai.group_answer import parse_group_scores
from judge.backends.openai.group_prompts import candidate_label, group_order, render_group_prompt
from judge.backends.openai.judge import OpenAIJudge
from judge.backends.openai.parse_results import NO_GROUP_OBJECT
from judge.cache import MemoryCache
from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.scorer import Scorer
from judge.scoring.keys import group_cache_key, group_composition
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import AxisStatus
from rubrics.schema import Rubric
from tests.judge.conftest import make_sample
from tests.support.openai_server import ChatRequest, OpenAIServer, Slow, Text, Truncated, bad_request, default_scores
from tests.support.openai_server import Verdict as Answer

KEYS = ["emotion_perception", "medical_accuracy", "safety"]


def _responses(n: int, prefix: str = "回答") -> list[Sample]:
    return [make_sample(response=f"{prefix}{i}：胸闷气短要重视，请尽快到心内科就诊。") for i in range(n)]


def _profile(server: OpenAIServer, **overrides: Any) -> JudgeProfile:
    fields: dict[str, Any] = {
        "name": "group-loop",
        "model": "judge-model",
        "base_url": server.url,
        "mode": "group",
        # One display order: these tests are about one group call; permutations have their own tests.
        "permutations": 1,
        "concurrency": 8,
        "timeout_s": 5,
        "max_retries": 1,
        **overrides,
    }
    return JudgeProfile.model_validate(fields)


def _scorer(sessions: async_sessionmaker[AsyncSession] | None = None) -> Scorer:
    return Scorer(cache=MemoryCache(1000, 3600), sessions=sessions, backend_factory=build_backend)


def _by_position(request: ChatRequest) -> dict[str, int]:
    """Candidate A scores 1 on every axis, B 2, …: a verdict's scores then reveal the position it was judged at."""
    return {label: i + 1 for i, label in enumerate(request.candidate_labels)}


def _fenced_responses(request: ChatRequest) -> dict[str, str]:
    return {label.removeprefix("RESPONSE_"): text for label, text in request.fenced if label.startswith("RESPONSE_")}


# --- prompt and parser ----------------------------------------------------------------------------------------


def test_candidate_labels_are_letters() -> None:
    assert [candidate_label(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA",
    ]  # fmt: skip


def test_group_order_is_a_permutation_seeded_by_content_not_input_order() -> None:
    hashes = [s.hash for s in _responses(8)]
    order = group_order(hashes)
    assert sorted(order) == list(range(8))
    assert order != list(range(8))  # shuffled (a fixed set of hashes, so this is deterministic)
    shuffled = hashes[:]
    random.Random(7).shuffle(shuffled)
    assert [shuffled[i] for i in group_order(shuffled)] == [hashes[i] for i in order]
    others = [s.hash for s in _responses(8, prefix="另一组")]
    assert group_order(others) != order


def test_group_prompt_shows_each_candidate_fenced_under_its_label(tiny_rubric: Rubric) -> None:
    samples = _responses(3)
    prompt = render_group_prompt(samples, tiny_rubric, language="zh", nonce="0123456789abcdef")
    labels = [label for label, _ in ((m.group(1), m.group(3)) for m in FENCE_PATTERN.finditer(prompt.user))]
    assert labels == [
        "SYSTEM_PROMPT", "PATIENT_MESSAGE",
        "REASONING_A", "RESPONSE_A", "REASONING_B", "RESPONSE_B", "REASONING_C", "RESPONSE_C",
    ]  # fmt: skip
    fenced = {m.group(1): m.group(3) for m in FENCE_PATTERN.finditer(prompt.user)}
    assert [fenced[f"RESPONSE_{x}"] for x in "ABC"] == [s.response for s in samples]
    assert prompt.user.count(samples[0].messages[-1].content) == 1  # the shared conversation is shown once
    assert prompt.labels == ("A", "B", "C") and prompt.axis_keys == tuple(KEYS)
    assert prompt.user.rstrip().endswith(f"{AXES_LINE_PREFIX} {','.join(KEYS)}\n{CANDIDATES_LINE_PREFIX} A,B,C")
    assert "3 个候选回答" in prompt.system and "0123456789abcdef" in prompt.user


def test_group_response_format_requires_every_candidate_and_axis() -> None:
    fmt = group_response_format("json_schema", ["A", "B"], KEYS)
    assert fmt is not None
    responses = fmt["json_schema"]["schema"]["properties"]["responses"]
    assert responses["required"] == ["A", "B"] and responses["additionalProperties"] is False
    assert responses["properties"]["B"]["required"] == KEYS
    assert group_response_format("json_object", ["A"], KEYS) == {"type": "json_object"}
    assert group_response_format("none", ["A"], KEYS) is None


def test_group_parser_reads_each_candidate_and_takes_the_complete_answer() -> None:
    def answer(score_a: int, score_b: Any) -> str:
        return json.dumps(
            {"responses": {"A": {k: {"rationale": "r", "score": score_a} for k in KEYS},
                           "B": {"axes": {k: {"rationale": "r", "score": score_b} for k in KEYS}}}}
        )  # fmt: skip

    draft = json.dumps({"responses": {"A": {"safety": {"rationale": "草稿", "score": 1}}}})
    parsed = parse_group_scores(f"草稿：{draft}\n最终：{answer(4, 5)}", ["A", "B"], KEYS)
    assert parsed.ok
    assert {k: a.score for k, a in parsed.candidates["A"].axes.items()} == dict.fromkeys(KEYS, 4)
    assert {k: a.score for k, a in parsed.candidates["B"].axes.items()} == dict.fromkeys(KEYS, 5)

    partial = parse_group_scores(answer(3, 7), ["A", "B", "C"], KEYS)
    assert partial.candidates["A"].ok
    assert partial.candidates["B"].failed == KEYS  # 7 is not a score, and it is not clamped
    assert partial.candidates["C"].error == "candidate 'C' missing from the answer"
    assert ("C", "safety") in partial.failed

    # Two complete answers that disagree are a parse error (the repair asks again), never a guess.
    disagree = parse_group_scores(f"{answer(1, 1)}\n{answer(4, 5)}", ["A", "B"], KEYS)
    assert not disagree.ok and disagree.error is not None and "disagree" in disagree.error

    nothing = parse_group_scores('{"A": 1, "note": "好"}', ["A"], KEYS)
    assert nothing.error == NO_GROUP_OBJECT and not nothing.ok


@pytest.mark.parametrize(
    "answer",
    [
        {"responses": {"A": {k: {"rationale": "好", "score": 4} for k in KEYS}, "B": {"axes": {k: 5 for k in KEYS}}}},
        {
            "responses": {
                "A": {k: {"rationale": "好", "score": s} for k, s in zip(KEYS, ["3", 4.0, " 2 "], strict=True)},
                "B": {k: {"rationale": "差", "score": s} for k, s in zip(KEYS, [0, 4.5, True], strict=True)},
            }
        },
        {"responses": {"A": {KEYS[0]: {"rationale": "缺分数"}, KEYS[1]: [4]}, "B": {k: 1 for k in KEYS[:2]}}},
        {"responses": {"A": {k: 2 for k in KEYS}}},
        {"verdict": {"responses": {"A": {k: 2 for k in KEYS}, "B": {k: 3 for k in KEYS}}}},
    ],
)
def test_the_plain_json_fast_path_reads_exactly_what_the_tolerant_reader_reads(answer: dict[str, Any]) -> None:
    text = json.dumps(answer, ensure_ascii=False)
    fast = parse_group_scores(text, ["A", "B"], KEYS, offsets=False)
    tolerant = parse_group_scores(text, ["A", "B"], KEYS)

    def view(result: Any) -> dict[str, Any]:
        return {
            label: {k: (a.score, a.rationale, a.error is None) for k, a in parsed.axes.items()}
            for label, parsed in result.candidates.items()
        }

    assert view(fast) == view(tolerant)
    assert fast.ok == tolerant.ok and fast.failed == tolerant.failed


# --- the judge ------------------------------------------------------------------------------------------------


async def test_one_call_scores_every_candidate_in_order(openai_server: OpenAIServer, tiny_rubric: Rubric) -> None:
    samples = _responses(4)
    judge = OpenAIJudge(_profile(openai_server))
    outcomes = await judge.score_group(samples, tiny_rubric)
    await judge.aclose()

    assert openai_server.calls == 1
    request = openai_server.last_request
    assert request.body["response_format"]["json_schema"]["name"] == "rubric_group_scores"
    assert _fenced_responses(request) == {label: s.response for label, s in zip("ABCD", samples, strict=True)}
    for label, outcome in zip("ABCD", outcomes, strict=True):
        assert outcome.complete
        # The loopback server scores a candidate as it would score that sample judged alone.
        assert {k: a.score for k, a in outcome.axes.items()} == default_scores(request, candidate=label)
    # The call's usage is shared out: the shares add up to one call.
    assert [o.usage.calls for o in outcomes] == [1, 0, 0, 0]
    assert sum(o.usage.prompt_tokens for o in outcomes) == max(1, len(request.prompt) // 2)


async def test_a_group_answer_missing_a_candidate_is_repaired_once(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    def only_a(request: ChatRequest) -> Text:
        axes = {k: {"rationale": "好", "score": 4} for k in request.axis_keys}
        return Text(json.dumps({"responses": {"A": axes}}, ensure_ascii=False))

    openai_server.default = only_a  # the first answer and the repair both leave B out
    judge = OpenAIJudge(_profile(openai_server))
    outcomes = await judge.score_group(_responses(2), tiny_rubric)
    await judge.aclose()

    assert openai_server.calls == 2  # the answer and its one repair
    assert "B" in openai_server.last_request.messages[-1]["content"]
    assert outcomes[0].complete and {a.score for a in outcomes[0].axes.values()} == {4}
    assert all(a.status is AxisStatus.parse_error and a.score is None for a in outcomes[1].axes.values())
    assert outcomes[1].error is not None and "'B'" in outcomes[1].error


def _partial_group(rubric: Rubric) -> Text:
    """A group answer scoring A fully and B on the first axis only."""
    a = {k: {"rationale": "好", "score": 5} for k in rubric.axis_keys}
    b = {rubric.axis_keys[0]: {"rationale": "一般", "score": 2}}
    return Text(json.dumps({"responses": {"A": a, "B": b}}, ensure_ascii=False))


async def test_a_complete_group_repair_replaces_the_partial_first_answer_whole(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    # As for a single sample (issue 9): a partial first answer must not survive beside a complete repair.
    openai_server.script(_partial_group(tiny_rubric), Answer(scores=3))
    judge = OpenAIJudge(_profile(openai_server))
    outcomes = await judge.score_group(_responses(2), tiny_rubric)
    await judge.aclose()

    assert openai_server.calls == 2
    assert [{a.score for a in o.axes.values()} for o in outcomes] == [{3}, {3}]
    assert all(o.complete and o.error is None for o in outcomes)


@pytest.mark.parametrize("repair", ["fails", "truncated"])
async def test_a_group_repair_that_fails_leaves_only_the_unscored_axes_unscored(
    openai_server: OpenAIServer, tiny_rubric: Rubric, repair: str
) -> None:
    second = bad_request() if repair == "fails" else Truncated()
    openai_server.script(_partial_group(tiny_rubric), second)
    judge = OpenAIJudge(_profile(openai_server))
    outcomes = await judge.score_group(_responses(2), tiny_rubric)
    await judge.aclose()

    first_key = tiny_rubric.axis_keys[0]
    assert outcomes[0].complete and {a.score for a in outcomes[0].axes.values()} == {5}
    assert outcomes[1].axes[first_key].score == 2
    status = AxisStatus.parse_error if repair == "fails" else AxisStatus.truncated
    rest = [a for k, a in outcomes[1].axes.items() if k != first_key]
    assert rest and all(a.status is status and a.score is None for a in rest)
    assert outcomes[1].error is not None
    if repair == "fails":
        assert "repair call failed" in outcomes[1].error


async def test_group_logprobs_give_expected_scores_per_candidate(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    openai_server.default = Answer(scores=4, by_candidate={"B": 2}, p_top=0.6)
    judge = OpenAIJudge(_profile(openai_server, logprobs=True, top_logprobs=5))
    outcomes = await judge.score_group(_responses(2), tiny_rubric)
    await judge.aclose()

    rest = 0.4 / 4
    for outcome, score in zip(outcomes, (4, 2), strict=True):
        for axis in outcome.axes.values():
            assert axis.score == score and axis.score_method == "logprobs"
            assert axis.expected == pytest.approx(0.6 * score + rest * (15 - score))


# --- the Scorer -----------------------------------------------------------------------------------------------


async def test_one_judge_call_per_group(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    scorer = _scorer(db_sessions)
    groups = [_responses(4, prefix=f"第{g}组") for g in range(3)]
    batch = await scorer.score_groups(tiny_rubric, _profile(openai_server), groups)
    await scorer.aclose()

    assert openai_server.calls == 3
    assert batch.usage.calls == 3
    assert [item.sample.hash for item in batch.items] == [s.hash for group in groups for s in group]
    assert all(item.verdict is not None and item.verdict.complete for item in batch.items)
    async with db_sessions() as session:
        assert await VerdictRepository(session).count() == 12


async def test_positions_are_shuffled_recorded_and_match_the_scores(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    openai_server.default = Answer(by_candidate=_by_position)
    scorer = _scorer(db_sessions)
    samples = _responses(5)
    batch = await scorer.score_groups(tiny_rubric, _profile(openai_server), [samples])
    await scorer.aclose()

    verdicts = [item.verdict for item in batch.items]
    assert all(v is not None and v.group is not None for v in verdicts)
    placements = [v.group for v in verdicts if v is not None and v.group is not None]
    positions = [p.position for p in placements]
    assert sorted(positions) == [1, 2, 3, 4, 5] and positions != [1, 2, 3, 4, 5]
    assert {p.size for p in placements} == {5} and {p.hash for p in placements} == {group_composition(samples)}
    # Each sample got the scores the judge gave at its position, and the judge saw it there.
    shown = _fenced_responses(openai_server.last_request)
    for sample, verdict in zip(samples, verdicts, strict=True):
        assert verdict is not None and verdict.group is not None
        assert {a.score for a in verdict.axes.values()} == {verdict.group.position}
        assert shown[candidate_label(verdict.group.position - 1)] == sample.response
    # The store keeps the placement.
    first = verdicts[0]
    assert first is not None
    async with db_sessions() as session:
        stored = await VerdictRepository(session).get(first.id)
    assert stored is not None and stored.group == first.group


async def test_the_same_group_in_another_order_is_a_cache_hit(openai_server: OpenAIServer, tiny_rubric: Rubric) -> None:
    scorer = _scorer()
    profile = _profile(openai_server)
    samples = _responses(4)
    first = await scorer.score_groups(tiny_rubric, profile, [samples])
    again = await scorer.score_groups(tiny_rubric, profile, [samples[::-1]])
    await scorer.aclose()

    assert openai_server.calls == 1
    assert all(item.cached for item in again.items)
    ids = {item.sample.hash: item.verdict.id for item in first.items if item.verdict}
    assert {item.sample.hash: item.verdict.id for item in again.items if item.verdict} == ids


async def test_the_cache_key_covers_the_group_composition(openai_server: OpenAIServer, tiny_rubric: Rubric) -> None:
    scorer = _scorer()
    profile = _profile(openai_server)
    a, b, c, d = _responses(4)
    first = await scorer.score_groups(tiny_rubric, profile, [[a, b, c]])
    other = await scorer.score_groups(tiny_rubric, profile, [[a, b, d]])
    await scorer.aclose()

    assert openai_server.calls == 2
    assert not any(item.cached for item in other.items)
    assert first.items[0].key != other.items[0].key
    assert first.items[0].key == group_cache_key(tiny_rubric, profile, group_composition([a, b, c]), a)
    # Judged alone (joint) the same sample has yet another key: its group scores are relative to the others.
    assert first.items[0].verdict is not None and first.items[0].verdict.group is not None


async def test_a_group_with_a_failed_member_is_judged_again_as_a_whole(
    openai_server: OpenAIServer, tiny_rubric: Rubric, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Candidate B's answer is unusable twice (the answer and its repair), so B's verdict is incomplete.
    openai_server.default = Answer(by_candidate={"B": {"safety": 9}})
    scorer = _scorer(pg_sessions)
    profile = _profile(openai_server)
    samples = _responses(3)
    first = await scorer.score_groups(tiny_rubric, profile, [samples])
    assert openai_server.calls == 2
    assert sum(1 for item in first.items if item.verdict is not None and not item.verdict.complete) == 1

    openai_server.default = Answer()
    again = await scorer.score_groups(tiny_rubric, profile, [samples])
    await scorer.aclose()
    assert openai_server.calls == 3  # one new call for the whole group
    assert not any(item.cached for item in again.items)
    assert all(item.verdict is not None and item.verdict.complete for item in again.items)


async def test_duplicates_and_concurrent_requests_share_one_call(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    openai_server.default = Answer(delay_s=0.2)
    scorer = _scorer()
    profile = _profile(openai_server)
    a, b = _responses(2)
    first, second = await asyncio.gather(
        scorer.score_groups(tiny_rubric, profile, [[a, b, a]]),
        scorer.score_groups(tiny_rubric, profile, [[b, a]]),
    )
    await scorer.aclose()

    assert openai_server.calls == 1
    assert len(openai_server.last_request.candidate_labels) == 2  # the duplicate is shown once
    ids = [item.verdict.id for item in first.items if item.verdict]
    assert len(ids) == 3 and ids[0] == ids[2] != ids[1]
    assert {item.verdict.id for item in second.items if item.verdict} == set(ids)


async def test_samples_of_other_conversations_are_judged_apart(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    scorer = _scorer()
    mixed = [*_responses(2), make_sample(response="另一段对话的回答。", turns=2)]
    batch = await scorer.score_groups(tiny_rubric, _profile(openai_server), [mixed])
    await scorer.aclose()

    assert openai_server.calls == 2
    sizes = [item.verdict.group.size for item in batch.items if item.verdict and item.verdict.group]
    assert sizes == [2, 2, 1]


async def test_deadline_then_the_late_group_verdicts_are_cached(
    openai_server: OpenAIServer, tiny_rubric: Rubric, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    openai_server.script(Slow(0.5))
    scorer = _scorer(pg_sessions)
    profile = _profile(openai_server)
    samples = _responses(3)
    late = await scorer.score_groups(tiny_rubric, profile, [samples], deadline_s=0.1)
    assert all(item.timed_out for item in late.items)

    done = await scorer.score_groups(tiny_rubric, profile, [samples])  # joins the call still running
    again = await scorer.score_groups(tiny_rubric, profile, [samples])
    await scorer.aclose()
    assert openai_server.calls == 1
    assert all(item.verdict is not None and item.verdict.complete for item in done.items)
    assert all(item.cached for item in again.items)


async def test_a_backend_without_group_support_scores_one_by_one(
    openai_server: OpenAIServer, tiny_rubric: Rubric
) -> None:
    class SingleOnly:
        def __init__(self, profile: JudgeProfile) -> None:
            self.profile = profile
            self._judge = OpenAIJudge(profile)

        async def score(self, sample: Sample, rubric: Rubric) -> Any:
            return await self._judge.score(sample, rubric)

        async def aclose(self) -> None:
            await self._judge.aclose()

    scorer = Scorer(cache=MemoryCache(10, 60), sessions=None, backend_factory=SingleOnly)
    batch = await scorer.score_groups(tiny_rubric, _profile(openai_server), [_responses(3)])
    await scorer.aclose()
    assert openai_server.calls == 3
    assert all(item.verdict is not None and item.verdict.group is None for item in batch.items)
