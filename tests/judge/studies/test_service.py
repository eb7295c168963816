"""Studies in the store (PostgreSQL and SQLite): creation, tokens, drafts, submissions, skips, closing."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.agreement.errors import RaterNotFound
from judge.agreement.studies import agreement_from_store
from judge.samples import normalise
from judge.store.ratings_repository import RatingRepository
from judge.store.verdicts_repository import VerdictRepository
from judge.studies import service
from judge.studies.errors import (
    InvalidItem,
    InvalidRaterToken,
    InvalidStudy,
    ItemConflict,
    StudyClosed,
    StudyExists,
)
from judge.studies.models import StudyItemRow, StudyRaterRow
from judge.studies.schemas import ItemDraft, ItemSkip, ItemSubmit, StudyCreated
from rubrics.schema import Rubric
from tests.judge.store.factories import make_verdict
from tests.judge.studies.conftest import RATERS, all_scores, create_request, samples, study_sample

BASE = "https://judge.hospital.example"


async def _create(sessions: async_sessionmaker[AsyncSession], rubric: Rubric, **changes: object) -> StudyCreated:
    request = create_request(**changes)  # type: ignore[arg-type]
    async with sessions() as session:
        created = await service.create_study(
            session, rubric, request, [normalise(s) for s in request.samples], base_url=BASE
        )
        await session.commit()
    return created


async def _ctx(sessions: async_sessionmaker[AsyncSession], token: str) -> service.RaterContext:
    async with sessions() as session:
        return await service.rater_context(session, token)


async def test_create_assigns_every_sample_to_k_raters_and_returns_links(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(db_sessions, prmed, n=6)
    assert [link.name for link in created.raters] == RATERS
    assert [link.rater for link in created.raters] == ["human:张医生", "human:李医生", "human:王医生"]
    assert [link.assigned for link in created.raters] == [4, 4, 4]  # 6 samples x 2 / 3 raters
    assert created.min_shared >= 1
    assert all(link.link == f"{BASE}/ui/r/{link.token}" for link in created.raters)
    async with db_sessions() as session:
        per_sample = (
            await session.execute(
                select(StudyItemRow.sample_hash, StudyItemRow.rater_id).where(StudyItemRow.study_id == created.id)
            )
        ).all()
        stored = list(await session.scalars(select(StudyRaterRow.token_hash)))
    by_sample: dict[str, set[int]] = {}
    for sample_hash, rater_id in per_sample:
        by_sample.setdefault(sample_hash, set()).add(rater_id)
    assert len(by_sample) == 6 and all(len(r) == 2 for r in by_sample.values())
    # Tokens are stored as their sha256 only.
    assert sorted(stored) == sorted(hashlib.sha256(link.token.encode()).hexdigest() for link in created.raters)
    assert not any(link.token in stored for link in created.raters)


async def test_create_refuses_duplicates_and_designs_that_cannot_connect(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    await _create(db_sessions, prmed)
    with pytest.raises(StudyExists) as exists:
        await _create(db_sessions, prmed)
    assert exists.value.field == "name"
    with pytest.raises(InvalidStudy) as twice:
        await _create(db_sessions, prmed, name="二", raters=["张医生", "张医生", "李医生"])
    assert twice.value.field == "raters"
    with pytest.raises(InvalidStudy) as few:
        await _create(db_sessions, prmed, name="三", n=2, raters=["甲", "乙", "丙", "丁"])
    assert few.value.field == "samples"


async def test_same_content_twice_is_assigned_once(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(
        db_sessions, prmed, raters=["甲", "乙"], samples=[study_sample(0), study_sample(1), study_sample(0)]
    )
    assert created.samples == 2 and created.duplicates == 1
    assert [s.id for s in service.unique_samples(samples(3)[::-1] + samples(3))] == ["样本-2", "样本-1", "样本-0"]


async def test_a_token_reaches_only_its_own_items(db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric) -> None:
    first = await _create(db_sessions, prmed)
    other = await _create(db_sessions, prmed, name="另一研究")
    zhang = await _ctx(db_sessions, first.raters[0].token)
    li = await _ctx(db_sessions, first.raters[1].token)
    elsewhere = await _ctx(db_sessions, other.raters[0].token)
    async with db_sessions() as session:
        for position in range(1, 5):
            await service.submit(session, zhang, prmed, position, ItemSubmit(scores=all_scores(prmed, 2)))
        await session.commit()
        zhang_hashes = {(await service.get_item(session, zhang, p)).sample_hash for p in range(1, 5)}
        for ctx in (li, elsewhere):
            for position in range(1, 5):
                item = await service.get_item(session, ctx, position)
                assert item.rater_id == ctx.rater.id
                assert service.item_out(item).scores == {}  # never another rater's scores
        li_hashes = {(await service.get_item(session, li, p)).sample_hash for p in range(1, 5)}
        assert zhang_hashes & li_hashes  # they share samples, and still see only their own ratings
    with pytest.raises(InvalidRaterToken):
        await _ctx(db_sessions, "not-a-token")
    with pytest.raises(InvalidRaterToken) as missing:
        await _ctx(db_sessions, "")
    assert missing.value.field == "X-Rater-Token"


async def test_submit_writes_human_ratings_idempotently_and_corrections_replace_them(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(db_sessions, prmed)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    body = ItemSubmit(
        scores=all_scores(prmed, 3), comments={"safety": "  未提示120  ", "completeness": " "}, elapsed=42
    )
    async with db_sessions() as session:
        first = await service.submit(session, zhang, prmed, 1, body)
        await session.commit()
    async with db_sessions() as session:
        again = await service.submit(session, zhang, prmed, 1, body)  # a client retry
        await session.commit()
    assert again.item.submitted_at == first.item.submitted_at  # nothing changed, nothing moved
    assert first.item.comments == {"safety": "未提示120"}
    assert first.progress.done == 1 and first.next_position == 2
    async with db_sessions() as session:
        rows = await RatingRepository(session).query(prmed.content_hash, ["human:张医生"])
    assert len(rows) == 13 and {r.score for r in rows} == {3.0} and {r.run for r in rows} == {0}
    corrected = {**all_scores(prmed, 3), "safety": 1}
    async with db_sessions() as session:
        later = await service.submit(session, zhang, prmed, 1, ItemSubmit(scores=corrected, elapsed=30))
        await session.commit()
        rows = await RatingRepository(session).query(prmed.content_hash, ["human:张医生"])
    assert len(rows) == 13
    assert {r.axis: r.score for r in rows}["safety"] == 1.0
    assert later.item.seconds_spent == 42  # the page's running total never goes back
    assert later.item.submitted_at is not None and later.item.submitted_at >= first.item.submitted_at  # type: ignore[operator]


async def test_submit_needs_every_axis_and_known_axes(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(db_sessions, prmed)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    partial = all_scores(prmed)
    del partial["tone_alignment"]
    async with db_sessions() as session:
        with pytest.raises(InvalidItem) as missing:
            await service.submit(session, zhang, prmed, 1, ItemSubmit(scores=partial))
        assert missing.value.field == "scores.tone_alignment"
        with pytest.raises(InvalidItem) as unknown:
            await service.save_draft(session, zhang, prmed, 1, ItemDraft(scores={"bedside": 3}))
        assert unknown.value.field == "scores.bedside"


async def test_drafts_autosave_without_ratings_and_survive_a_new_session(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(db_sessions, prmed)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    async with db_sessions() as session:
        await service.save_draft(
            session, zhang, prmed, 2, ItemDraft(scores={"safety": 2}, comments={"safety": "漏掉了胸痛红旗"}, elapsed=12)
        )
        await session.commit()
    async with db_sessions() as session:
        item = service.item_out(await service.get_item(session, zhang, 2))
        assert await RatingRepository(session).query(prmed.content_hash, ["human:张医生"]) == []
    assert item.state == "pending" and item.draft is not None
    assert item.draft.scores == {"safety": 2} and item.draft.comments == {"safety": "漏掉了胸痛红旗"}
    assert item.seconds_spent == 12


async def test_skip_with_reason_then_rate_later_but_not_skip_a_rated_item(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(db_sessions, prmed)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    async with db_sessions() as session:
        skipped = await service.skip(session, zhang, 1, ItemSkip(reason="超出我的专业范围"))
        await session.commit()
    assert skipped.item.state == "skipped" and skipped.item.skip_reason == "超出我的专业范围"
    assert skipped.progress.skipped == 1 and skipped.next_position == 2
    async with db_sessions() as session:
        assert await service.current_position(session, zhang) == 2
        done = await service.submit(session, zhang, prmed, 1, ItemSubmit(scores=all_scores(prmed)))
        await session.commit()
        assert done.item.state == "done" and done.item.skip_reason is None
        with pytest.raises(ItemConflict):
            await service.skip(session, zhang, 1, ItemSkip(reason="算了"))


async def test_closed_study_keeps_ratings_and_refuses_changes(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(db_sessions, prmed)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    async with db_sessions() as session:
        await service.submit(session, zhang, prmed, 1, ItemSubmit(scores=all_scores(prmed)))
        status = await service.close_study(session, created.name)
        await session.commit()
    assert status.state == "closed" and status.done == 1
    zhang = await _ctx(db_sessions, created.raters[0].token)
    async with db_sessions() as session:
        for call in (
            service.submit(session, zhang, prmed, 1, ItemSubmit(scores=all_scores(prmed, 1))),
            service.save_draft(session, zhang, prmed, 2, ItemDraft(scores={"safety": 1})),
            service.skip(session, zhang, 2, ItemSkip(reason="x")),
        ):
            with pytest.raises(StudyClosed):
                await call
        rows = await RatingRepository(session).query(prmed.content_hash, ["human:张医生"])
    assert {r.score for r in rows} == {4.0}


async def test_status_counts_progress_per_rater(db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric) -> None:
    created = await _create(db_sessions, prmed)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    li = await _ctx(db_sessions, created.raters[1].token)
    async with db_sessions() as session:
        await service.submit(session, zhang, prmed, 1, ItemSubmit(scores=all_scores(prmed), elapsed=30))
        await service.submit(session, zhang, prmed, 2, ItemSubmit(scores=all_scores(prmed), elapsed=50))
        await service.skip(session, li, 1, ItemSkip(reason="无法判断"))
        await session.commit()
        status = await service.study_status(session, created.name)
    rows = {r.name: r for r in status.raters}
    assert (rows["张医生"].done, rows["张医生"].pending, rows["张医生"].seconds_median) == (2, 2, 40.0)
    assert (rows["李医生"].skipped, rows["李医生"].done) == (1, 0)
    assert (status.samples, status.assigned, status.done, status.skipped) == (6, 12, 2, 1)


async def test_renewed_link_replaces_the_old_one(db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric) -> None:
    created = await _create(db_sessions, prmed)
    async with db_sessions() as session:
        link = await service.renew_link(session, created.name, "李医生", base_url=BASE)
        await session.commit()
    assert (await _ctx(db_sessions, link.token)).rater.name == "李医生"
    with pytest.raises(InvalidRaterToken):
        await _ctx(db_sessions, created.raters[1].token)


async def test_calibration_reveals_judges_only_after_rating(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(db_sessions, prmed, calibration=True)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    async with db_sessions() as session:
        item = await service.get_item(session, zhang, 1)
        sample = next(s for s in samples(6) if s.hash == item.sample_hash)
        verdict = make_verdict(sample).model_copy(update={"rubric_hash": prmed.content_hash})
        await VerdictRepository(session).add(verdict, sample)
        await session.commit()
        with pytest.raises(ItemConflict):
            await service.judge_scores(session, zhang, item)
        result = await service.submit(session, zhang, prmed, 1, ItemSubmit(scores=all_scores(prmed)))
        await session.commit()
    assert result.reveal is not None
    assert [(j.judge, j.scores) for j in result.reveal] == [("deepseek", {"emotion_perception": 5, "safety": 4})]


async def test_blind_study_reveals_nothing(db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric) -> None:
    created = await _create(db_sessions, prmed)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    async with db_sessions() as session:
        result = await service.submit(session, zhang, prmed, 1, ItemSubmit(scores=all_scores(prmed)))
        await session.commit()
        assert result.reveal is None
        with pytest.raises(ItemConflict):
            await service.judge_scores(session, zhang, await service.get_item(session, zhang, 1))


async def test_agreement_reads_study_ratings_at_once(
    db_sessions: async_sessionmaker[AsyncSession], prmed: Rubric
) -> None:
    created = await _create(db_sessions, prmed, n=6)
    zhang = await _ctx(db_sessions, created.raters[0].token)
    li = await _ctx(db_sessions, created.raters[1].token)
    with pytest.raises(RaterNotFound):
        await agreement_from_store(db_sessions, prmed, "human:*", n_boot=0)
    async with db_sessions() as session:
        for ctx, score in ((zhang, 4), (li, 3)):
            for position in range(1, 5):
                await service.submit(session, ctx, prmed, position, ItemSubmit(scores=all_scores(prmed, score)))
        await session.commit()
        async with db_sessions() as other:
            shared = (
                await other.execute(
                    text(
                        "SELECT count(*) FROM study_items a JOIN study_items b ON a.sample_hash = b.sample_hash "
                        "WHERE a.rater_id = :a AND b.rater_id = :b"
                    ),
                    {"a": zhang.rater.id, "b": li.rater.id},
                )
            ).scalar_one()
    report = await agreement_from_store(db_sessions, prmed, "human:*", n_boot=0)
    assert set(report.raters) == {"human:张医生", "human:李医生"}
    pair = report.pair("human:张医生", "human:李医生")
    assert shared >= 1
    assert all(axis.n == shared for axis in pair.axes) and pair.n_pass_samples == shared
