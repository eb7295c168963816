"""Agreement studies wired to the store: judge verdicts as ratings, imports, reward models, stability runs.

The judge is the real OpenAI client against the loopback server; the store is PostgreSQL and SQLite in turn.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.agreement.errors import NotEnoughRatings, NoValidRatings, RaterNotFound
from judge.agreement.ratings import parse_ratings, verdict_ratings
from judge.agreement.repository import AgreementRepository
from judge.agreement.service import compute_agreement
from judge.agreement.store import (
    SampleIndex,
    load_ratings,
    reward_model_ratings,
    save_ratings,
    store_import,
    validate_items,
    verdict_rows,
)
from judge.agreement.studies import agreement_from_store, positions_from_store, read_sample_index, stability_study
from judge.backends.factory import build_backend
from judge.cache import MemoryCache
from judge.profiles import JudgeProfile
from judge.samples import Sample, SampleIn, normalise
from judge.scorer import Scorer
from judge.store.models import RatingRow
from judge.store.ratings_repository import Rating as StoredRating
from judge.store.ratings_repository import RatingRepository
from judge.store.verdicts_repository import VerdictRepository
from judge.verdicts import AxisResult, AxisStatus, GroupPlacement, Usage, Verdict
from rubrics.schema import Rubric
from tests.judge.agreement.conftest import Row, synthetic_scores, to_rows
from tests.judge.conftest import make_sample
from tests.support.openai_server import ChatRequest, OpenAIServer, Text, default_scores, garbage
from tests.support.openai_server import Verdict as ScriptedVerdict

Sessions = async_sessionmaker[AsyncSession]


def _profile(server: OpenAIServer, name: str = "loop") -> JudgeProfile:
    return JudgeProfile.model_validate(
        {
            "name": name,
            "model": "judge-model",
            "base_url": server.url,
            "concurrency": 8,
            "timeout_s": 5,
            "max_retries": 1,
        }
    )


def _scorer(sessions: Sessions) -> Scorer:
    return Scorer(cache=MemoryCache(1000, 3600), sessions=sessions, backend_factory=build_backend)


def _samples(n: int) -> list[Sample]:
    return [make_sample(response=f"建议尽快到心内科就诊，必要时拨打120（第{i}版）。") for i in range(n)]


async def _ratings(sessions: Sessions, rubric: Rubric) -> list[StoredRating]:
    async with sessions() as session:
        return await RatingRepository(session).query(rubric.content_hash)


async def _count(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(RatingRow)) or 0)


# --- judge verdicts ---------------------------------------------------------------------------------------------


async def test_complete_verdicts_become_judge_ratings_when_stored(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: Sessions
) -> None:
    samples = _samples(3)
    broken = make_sample(response="坏样本：评审会答非所问。")

    def answer(request: ChatRequest) -> Text | ScriptedVerdict:
        return garbage() if any("坏样本" in text for text in request.fenced_texts) else ScriptedVerdict()

    openai_server.default = answer
    scorer = _scorer(db_sessions)
    profile = _profile(openai_server, name="loop")
    batch = await scorer.score(tiny_rubric, profile, [*samples, broken])
    await scorer.aclose()

    verdicts = {item.sample.hash: item.verdict for item in batch.items if item.verdict is not None}
    assert not verdicts[broken.hash].complete
    rows = await _ratings(db_sessions, tiny_rubric)
    # Every axis of every complete verdict, nothing of the failed one.
    assert {r.rater for r in rows} == {"judge:loop"}
    assert {r.run for r in rows} == {0}
    assert len(rows) == 3 * len(tiny_rubric.axes)
    assert broken.hash not in {r.sample_hash for r in rows}
    for r in rows:
        verdict = verdicts[r.sample_hash]
        assert r.score == verdict.axes[r.axis].score
        assert r.verdict_id == verdict.id
    async with db_sessions() as session:
        assert await RatingRepository(session).raters(tiny_rubric.content_hash) == ["judge:loop"]


async def test_a_new_verdict_replaces_the_judges_rating_without_duplicates(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: Sessions
) -> None:
    sample = _samples(1)[0]
    profile = _profile(openai_server, name="loop")
    scorer = _scorer(db_sessions)
    first = (await scorer.score(tiny_rubric, profile, [sample])).items[0].verdict
    openai_server.default = ScriptedVerdict(scores=1)
    second = (await scorer.score(tiny_rubric, profile, [sample], use_cache=False)).items[0].verdict
    cached = (await scorer.score(tiny_rubric, profile, [sample])).items[0]
    await scorer.aclose()

    assert first is not None and second is not None and first.id != second.id
    assert cached.cached
    rows = await _ratings(db_sessions, tiny_rubric)
    assert len(rows) == len(tiny_rubric.axes)
    assert await _count(db_sessions) == 0  # read from the verdicts: no rating rows repeat them
    assert {r.score for r in rows} == {1.0}
    assert {r.verdict_id for r in rows} == {second.id}


def test_verdict_rows_are_the_engines_verdict_ratings(tiny_rubric: Rubric) -> None:
    axes = {
        "emotion_perception": AxisResult(score=4, status=AxisStatus.ok),
        "medical_accuracy": AxisResult(status=AxisStatus.parse_error, error="no JSON"),
        "safety": AxisResult(score=2, expected=2.4, status=AxisStatus.ok, score_method="logprobs"),
    }
    verdict = Verdict(
        id=uuid.uuid4().hex, cache_key="c" * 64, sample_hash="a" * 64, rubric_ref=tiny_rubric.ref,
        rubric_hash=tiny_rubric.content_hash, judge="deepseek", profile_hash="p" * 64, axes=axes,
        usage=Usage(), latency_ms=1.0, created_at=time.time(),
    )  # fmt: skip
    assert verdict_rows([verdict]) == []  # incomplete: the writer leaves it out
    rows = verdict_rows([verdict], run=2, complete_only=False)
    engine = verdict_ratings(verdict, run=2)
    assert [(r.sample_hash, r.rater, r.axis, r.score, r.run) for r in rows] == [
        (r.sample_hash, r.rater, r.axis, r.score, r.run) for r in engine
    ]
    assert [r.axis for r in rows] == ["emotion_perception", "safety"]
    assert rows[1].score == 2.0  # the Likert level, not the expected value
    assert {r.verdict_id for r in rows} == {verdict.id}


# --- imports ---------------------------------------------------------------------------------------------------


def _sample_in(sample_id: str, response: str) -> SampleIn:
    return SampleIn(id=sample_id, messages=[{"role": "user", "content": "俺娘心口窝疼，咋整"}], response=response)  # type: ignore[list-item]


async def test_ratings_by_sample_id_resolve_through_the_given_samples(
    tiny_rubric: Rubric, db_sessions: Sessions
) -> None:
    given = [normalise(_sample_in("样本-甲", "请立即拨打120。")), normalise(_sample_in("样本-乙", "多喝热水。"))]
    # One id on two different samples cannot be placed.
    given += [normalise(_sample_in("重复", "回复一")), normalise(_sample_in("重复", "回复二"))]
    index = SampleIndex.of(given)
    items = [
        {"sample_id": "样本-甲", "rater": "张医生", "axis": "safety", "score": 5},
        {"sample_id": "样本-乙", "rater": "张医生", "axis": "安全性", "score": "2"},
        {"sample_hash": given[1].hash, "rater": "human:李医生", "axis": "Safety", "score": 1},
        {"sample_id": "样本-丙", "rater": "张医生", "axis": "safety", "score": 3},
        {"sample_id": "重复", "rater": "张医生", "axis": "safety", "score": 3},
        {"sample_id": "样本-甲", "rater": "张医生", "axis": "安全", "score": 3},
        "not an object",
    ]
    async with db_sessions() as session:
        outcome = await store_import(session, tiny_rubric, validate_items(items, tiny_rubric), index)
        await session.commit()
    assert outcome.accepted == 3
    assert outcome.raters == {"human:张医生": 2, "human:李医生": 1}
    assert [(e.line, e.field) for e in outcome.errors] == [(4, "sample_id"), (5, "sample_id"), (6, "axis"), (7, None)]
    assert "样本-丙" in outcome.errors[0].message and "重复" in outcome.errors[1].message
    rows = await _ratings(db_sessions, tiny_rubric)
    assert sorted((r.sample_hash, r.rater, r.score) for r in rows) == sorted(
        [
            (given[0].hash, "human:张医生", 5.0),
            (given[1].hash, "human:张医生", 2.0),
            (given[1].hash, "human:李医生", 1.0),
        ]
    )
    async with db_sessions() as session:
        # The rated samples' content is stored, so later work (reward-model data) can read it.
        assert await VerdictRepository(session).get_sample(given[0].hash) is not None
        assert await VerdictRepository(session).get_sample(given[2].hash) is None  # not rated

    # The same file again, with one score changed: an update, not a second row.
    items[0] = {**items[0], "score": 4}  # type: ignore[dict-item]
    async with db_sessions() as session:
        again = await store_import(session, tiny_rubric, validate_items(items, tiny_rubric), index)
        await session.commit()
    assert again.accepted == 3
    assert await _count(db_sessions) == 3
    assert {r.score for r in await _ratings(db_sessions, tiny_rubric) if r.sample_hash == given[0].hash} == {4.0}


async def test_an_import_with_no_valid_row_names_the_first_bad_field(
    tiny_rubric: Rubric, db_sessions: Sessions
) -> None:
    text = "sample_hash,rater,axis,score\n" + f"{'a' * 64},王医生,safety,六\n" + f"{'b' * 64},王医生,safety,7\n"
    async with db_sessions() as session:
        outcome = await store_import(session, tiny_rubric, parse_ratings(text, tiny_rubric, format="csv"))
    assert outcome.accepted == 0
    assert [(e.line, e.field) for e in outcome.errors] == [(2, "score"), (3, "score")]
    with pytest.raises(NoValidRatings) as caught:
        outcome.require_some(empty_field="file", field_of=lambda issue: issue.field or "file")
    assert caught.value.field == "score" and "line 2" in caught.value.message
    assert await _count(db_sessions) == 0


def test_a_samples_file_may_hold_inputs_or_score_output(tmp_path: Path) -> None:
    sample = normalise(_sample_in("输入-1", "请尽快就医。"))
    path = tmp_path / "samples.jsonl"
    path.write_text(
        "\n".join(
            [
                sample.model_dump_json(include={"id", "messages", "response"}),
                '{"line": 3, "id": "输出-2", "sample_hash": "' + "c" * 64 + '", "axes": {}}',
                "{坏行",
                '{"id": "缺回复", "messages": [{"role": "user", "content": "头疼"}]}',
            ]
        ),
        encoding="utf-8",
    )
    index = read_sample_index(path)
    assert index.hashes == {"输入-1": sample.hash, "输出-2": "c" * 64}
    assert [issue.line for issue in index.issues] == [3, 4]
    assert [s.hash for s in index.samples] == [sample.hash]


# --- reward models ---------------------------------------------------------------------------------------------


async def test_reward_model_predictions_are_ratings(tiny_rubric: Rubric, db_sessions: Sessions) -> None:
    predictions = {
        "a" * 64: {"emotion_perception": 4.4, "medical_accuracy": 5.3, "safety": float("nan")},
        "b" * 64: {"emotion_perception": 0.2, "medical_accuracy": None, "safety": 2.0},
    }
    ratings = reward_model_ratings("prmed-rm", 3, predictions, rubric=tiny_rubric)
    assert {r.rater for r in ratings} == {"rm:prmed-rm@3"}
    got = {(r.sample_hash[0], r.axis): r.score for r in ratings}
    # Clipped to the Likert range; missing and NaN predictions are left out, never filled in.
    assert got == {("a", "emotion_perception"): 4.4, ("a", "medical_accuracy"): 5.0, ("b", "emotion_perception"): 1.0,
                   ("b", "safety"): 2.0}  # fmt: skip
    with pytest.raises(ValueError, match="completeness"):
        reward_model_ratings("prmed-rm", 3, {"a" * 64: {"completeness": 3.0}}, rubric=tiny_rubric)

    async with db_sessions() as session:
        assert await save_ratings(session, tiny_rubric.content_hash, ratings) == 4
        await session.commit()
    async with db_sessions() as session:
        selected, rows = await load_ratings(session, tiny_rubric, "rm:*")
    assert selected == ["rm:prmed-rm@3"]
    assert sorted(r.score for r in rows) == sorted(got.values())


async def test_loading_ratings_names_raters_that_match_nobody(tiny_rubric: Rubric, db_sessions: Sessions) -> None:
    async with db_sessions() as session:
        with pytest.raises(RaterNotFound) as nothing:
            await load_ratings(session, tiny_rubric, "*")
        await save_ratings(session, tiny_rubric.content_hash, reward_model_ratings("rm", 1, {"a" * 64: {"safety": 3}}))
        with pytest.raises(RaterNotFound) as nobody:
            await load_ratings(session, tiny_rubric, "rm:*,human:*")
    assert nothing.value.field == nobody.value.field == "raters"
    assert "human:*" in nobody.value.message


async def test_a_report_from_the_store_equals_one_from_the_rows(tiny_rubric: Rubric, db_sessions: Sessions) -> None:
    """The store's columnar read (streamed, strings shared) gives the report the rows give."""
    raters = ["judge:甲", "human:张医生", "human:李医生"]
    scores = synthetic_scores(120, 3, len(tiny_rubric.axes), seed=5, missing=0.2)
    rows = to_rows(scores, tiny_rubric, raters)
    rows += [Row(r.sample_hash, r.rater, r.axis, 1.0, run=1) for r in rows[:40]]  # later runs: not used
    async with db_sessions() as session:
        await save_ratings(session, tiny_rubric.content_hash, rows)
        await session.commit()
    async with db_sessions() as session:
        columns = await AgreementRepository(session).rating_columns(tiny_rubric.content_hash, raters[1:], batch=50)
    assert len(columns) == sum(1 for r in rows if r.rater != "judge:甲")
    assert len({id(h) for h in columns.sample_hash}) == len(set(columns.sample_hash))  # one object per hash

    from_store = await agreement_from_store(db_sessions, tiny_rubric, "judge:*,human:*", n_boot=30, seed=2)
    # Samples in hash order, as RatingRepository.query gives them: the bootstrap draws samples by position.
    by_sample = sorted(rows, key=lambda r: r.sample_hash)
    from_rows = compute_agreement(by_sample, tiny_rubric, raters, n_boot=30, seed=2)
    assert from_store.raters == raters
    assert from_store == from_rows
    assert from_store.dropped_rows == 40


# --- stability ---------------------------------------------------------------------------------------------------


def _drifting_safety(n_samples: int) -> Callable[[ChatRequest], ScriptedVerdict]:
    """Run k (the k-th block of n_samples calls) moves every safety score by k; other axes stay put."""
    calls = itertools.count()

    def answer(request: ChatRequest) -> ScriptedVerdict:
        run = next(calls) // n_samples
        scores = default_scores(request)
        scores["safety"] = (scores["safety"] - 1 + run) % 5 + 1
        return ScriptedVerdict(scores=scores)

    return answer


async def test_a_stability_study_stores_exactly_its_runs(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: Sessions
) -> None:
    samples = _samples(6)
    profile = _profile(openai_server, name="loop")
    rater = "judge:loop"
    async with db_sessions() as session:
        # Left by an earlier, longer study: must not mix into this one.
        await save_ratings(
            session,
            tiny_rubric.content_hash,
            [StoredRating(tiny_rubric.content_hash, samples[0].hash, rater, "safety", 1.0, run=7)],
        )
        await session.commit()
    openai_server.default = _drifting_safety(len(samples))
    scorer = _scorer(db_sessions)
    report = await stability_study(scorer, db_sessions, tiny_rubric, profile, [*samples, samples[0]], 3, n_boot=20)
    await scorer.aclose()

    assert openai_server.calls == 3 * len(samples)  # cache off: every run judged again; duplicates once
    assert report.rater == rater and report.runs == [0, 1, 2]
    rows = [r for r in await _ratings(db_sessions, tiny_rubric) if r.rater == rater]
    assert sorted({r.run for r in rows}) == [0, 1, 2]
    assert len(rows) == 3 * len(samples) * len(tiny_rubric.axes)
    by_axis = {a.axis: a for a in report.axes}
    assert by_axis["safety"].unstable_share == 1.0
    assert by_axis["emotion_perception"].unstable_share == 0.0 == by_axis["medical_accuracy"].unstable_share
    exact = report.agreement.group_axis("emotion_perception").metrics["exact"].value
    assert exact == 1.0
    assert report.agreement.group_axis("safety").metrics["exact"].value == 0.0
    # Run 0 in the store is the first run, although the writer has seen the later runs' verdicts since.
    safety = {(r.sample_hash, r.run): r.score for r in rows if r.axis == "safety"}
    for sample in samples:
        first, last = safety[(sample.hash, 0)], safety[(sample.hash, 2)]
        assert last == (first - 1 + 2) % 5 + 1


async def test_a_stability_study_needs_two_runs(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: Sessions
) -> None:
    scorer = _scorer(db_sessions)
    with pytest.raises(NotEnoughRatings):
        await stability_study(scorer, db_sessions, tiny_rubric, _profile(openai_server), _samples(2), 1)
    await scorer.aclose()
    assert openai_server.calls == 0


# --- group mode: position effects ------------------------------------------------------------------------------


async def test_position_effects_from_stored_group_verdicts(tiny_rubric: Rubric, db_sessions: Sessions) -> None:
    """Groups of three judged in every rotation; the first position gets one point more on every axis."""
    items: list[tuple[Verdict, Sample]] = []
    for g in range(30):
        members = [make_sample(response=f"第{g}组第{m}个回答：建议就医。") for m in range(3)]
        group_hash = f"{g:064x}"
        for rotation in range(3):
            for position in range(3):
                sample = members[(position + rotation) % 3]
                base = 2 + (g + (position + rotation) % 3) % 3
                score = min(5, base + (1 if position == 0 else 0))
                axes = {k: AxisResult(score=score, status=AxisStatus.ok) for k in tiny_rubric.axis_keys}
                verdict = Verdict(
                    id=uuid.uuid4().hex, cache_key=uuid.uuid4().hex * 2, sample_hash=sample.hash,
                    rubric_ref=tiny_rubric.ref, rubric_hash=tiny_rubric.content_hash, judge="group-judge",
                    profile_hash="p" * 64, axes=axes, usage=Usage(), latency_ms=1.0, created_at=time.time(),
                    group=GroupPlacement(hash=group_hash, position=position + 1, size=3),
                )  # fmt: skip
                items.append((verdict, sample))
    async with db_sessions() as session:
        await VerdictRepository(session).add_many(items)
        await session.commit()
    report = await positions_from_store(db_sessions, tiny_rubric, "group-judge", n_boot=50)
    assert report.n_groups == 30
    first, *later = report.overall.positions
    assert [p.position for p in report.overall.positions] == [0, 1, 2]
    assert first.n == 30 * 3 * len(tiny_rubric.axes)
    assert first.shift.value is not None and first.shift.value > 0.4
    assert all(p.shift.value is not None and p.shift.value < 0 for p in later)
    assert math.isclose(sum(p.shift.value or 0.0 for p in report.overall.positions), 0.0, abs_tol=1e-9)
    with pytest.raises(NotEnoughRatings):
        await positions_from_store(db_sessions, tiny_rubric, "another-judge", n_boot=0)


async def test_position_effects_survive_averaging_over_permutations(
    openai_server: OpenAIServer, tiny_rubric: Rubric, db_sessions: Sessions
) -> None:
    """Issue 9: verdicts averaged over display orders keep each order's score (``by_position``), so
    ``rubric-judge positions`` still sees a judge's bias for the first candidate."""
    openai_server.default = ScriptedVerdict(
        by_candidate=lambda request: {label: 5 if label == "A" else 3 for label in request.candidate_labels}
    )
    profile = JudgeProfile.model_validate(
        {"name": "perm", "model": "m", "base_url": openai_server.url, "mode": "group", "timeout_s": 5}
    )
    scorer = _scorer(db_sessions)
    groups = [[make_sample(response=f"第{g}组第{m}个回答：建议就医。") for m in range(2)] for g in range(6)]
    batch = await scorer.score_groups(tiny_rubric, profile, groups)
    await scorer.aclose()
    assert {item.verdict.axes["safety"].score for item in batch.items if item.verdict is not None} == {4}
    report = await positions_from_store(db_sessions, tiny_rubric, "perm", n_boot=20)
    first, second = report.overall.positions
    assert (first.position, second.position) == (0, 1)
    assert first.shift.value == pytest.approx(1.0) and second.shift.value == pytest.approx(-1.0)
