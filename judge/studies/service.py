"""Rating studies: creation (the assignment design, tokens), the rater's items (drafts, submissions, skips,
calibration) and progress. Shared by the API, the page and the CLI; only ``flush()``es, the edge commits.

A rater is known by a token that is shown once (in their personal link) and stored as its sha256: every
item query is scoped by the rater the token names, so a token reaches only its own assignments, never
another rater's or another study's. Submitted scores go through :func:`judge.agreement.store.save_ratings`
as ``human:<name>`` run-0 ratings: idempotent per (sample, rater, axis, run), replaced by a correction,
and read at once by ``GET /v1/agreement`` and the reports.
"""

from __future__ import annotations

import hashlib
import secrets
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from judge.agreement.ratings import Rating
from judge.agreement.repository import AgreementRepository
from judge.agreement.store import save_ratings
from judge.db.base import utcnow
from judge.samples import Sample
from judge.store.ratings_repository import RatingRepository
from judge.store.rubrics_repository import RubricRepository
from judge.studies.design import assign, check_design, min_samples, rater_orders
from judge.studies.errors import (
    InvalidItem,
    InvalidRaterToken,
    InvalidStudy,
    ItemConflict,
    ItemNotFound,
    StudyClosed,
    StudyExists,
    StudyNotFound,
)
from judge.studies.models import StudyItemRow, StudyRaterRow, StudyRow
from judge.studies.repository import StudyRepository
from judge.studies.schemas import (
    ActionResult,
    ItemDraft,
    ItemOut,
    ItemRecord,
    ItemSkip,
    ItemSubmit,
    JudgeScores,
    Progress,
    RaterLink,
    RaterProgress,
    StudyCreated,
    StudySpec,
    StudyStatus,
    human_rater,
)
from rubrics.errors import RubricNotFound
from rubrics.registry import RubricRegistry
from rubrics.schema import Rubric

TOKEN_HEADER = "X-Rater-Token"
# Seeds tried after the requested one when a design near the minimum number of samples leaves a pair apart.
_DESIGN_ATTEMPTS = 25
_MAX_TOKEN_CHARS = 200


def new_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def rater_link(base_url: str, token: str) -> str:
    """A rater's personal link: the page of their next item."""
    return f"{base_url.rstrip('/')}/ui/r/{token}"


@dataclass(frozen=True)
class RaterContext:
    """Who a token belongs to: the rater and their study."""

    rater: StudyRaterRow
    study: StudyRow

    @property
    def rater_key(self) -> str:
        return human_rater(self.rater.name)

    @property
    def closed(self) -> bool:
        return self.study.state == "closed"


# --- creation ------------------------------------------------------------------------------------------------


def unique_samples(samples: Sequence[Sample]) -> list[Sample]:
    """One sample per content hash, in input order (a sample is assigned once however often it appears)."""
    first: dict[str, Sample] = {}
    for sample in samples:
        first.setdefault(sample.hash, sample)
    return list(first.values())


def plan(n_samples: int, n_raters: int, per_sample: int, seed: int) -> list[list[int]]:
    """A balanced, connected design, or :class:`InvalidStudy` saying how many samples it would take."""
    if per_sample > n_raters:
        raise InvalidStudy(f"per_sample {per_sample} is more than the {n_raters} raters", field="per_sample")
    needed = min_samples(n_raters, per_sample)
    if n_samples < needed:
        raise InvalidStudy(
            f"{n_samples} samples with {per_sample} raters each cannot let every pair of the {n_raters} raters "
            f"share a sample; give at least {needed} samples or raise per_sample",
            field="samples",
        )
    for attempt in range(_DESIGN_ATTEMPTS):
        design = assign(n_samples, n_raters, per_sample, seed=seed + attempt)
        if check_design(design, n_raters).connected:
            return design
    raise InvalidStudy(
        f"found no design in which every pair of the {n_raters} raters shares one of {n_samples} samples; "
        "add a few samples or raise per_sample",
        field="samples",
    )


async def create_study(
    session: AsyncSession, rubric: Rubric, request: StudySpec, samples: Sequence[Sample], *, base_url: str
) -> StudyCreated:
    """Store the study, its samples, raters and assignments; the raters' links (tokens) are returned once."""
    repo = StudyRepository(session)
    if await repo.study_by_name(request.name) is not None:
        raise StudyExists(f"a study named {request.name!r} exists", field="name")
    if len(set(request.raters)) != len(request.raters):
        twice = sorted({r for r in request.raters if request.raters.count(r) > 1})
        raise InvalidStudy(f"rater named twice: {', '.join(twice)}", field="raters")
    unique = unique_samples(samples)
    design = plan(len(unique), len(request.raters), request.per_sample, request.seed)
    check = check_design(design, len(request.raters))
    await AgreementRepository(session).add_samples(unique)
    study = StudyRow(
        id=uuid.uuid4().hex,
        name=request.name,
        rubric_ref=rubric.ref,
        rubric_hash=rubric.content_hash,
        per_sample=request.per_sample,
        calibration=request.calibration,
        state="open",
        seed=request.seed,
    )
    try:
        await repo.add_study(study)
    except IntegrityError:  # created meanwhile under the same name by another request
        raise StudyExists(f"a study named {request.name!r} exists", field="name") from None
    links: list[RaterLink] = []
    items: list[dict[str, object]] = []
    for index, order in enumerate(rater_orders(design, len(request.raters), seed=request.seed)):
        name = request.raters[index]
        token = new_token()
        rater = await repo.add_rater(StudyRaterRow(study_id=study.id, name=name, token_hash=hash_token(token)))
        for position, sample_index in enumerate(order, start=1):
            sample = unique[sample_index]
            items.append(
                {
                    "study_id": study.id,
                    "rater_id": rater.id,
                    "sample_hash": sample.hash,
                    "sample_id": sample.id,
                    "position": position,
                    "state": "pending",
                    "draft": {},
                    "scores": {},
                    "comments": {},
                    "seconds_spent": 0.0,
                }
            )
        links.append(
            RaterLink(
                name=name, rater=human_rater(name), assigned=len(order), token=token, link=rater_link(base_url, token)
            )
        )
    await repo.add_items(items)
    return StudyCreated(
        id=study.id,
        name=study.name,
        rubric=rubric.ref,
        rubric_hash=rubric.content_hash,
        per_sample=request.per_sample,
        calibration=request.calibration,
        samples=len(unique),
        duplicates=len(samples) - len(unique),
        min_shared=min(check.shared.values(), default=0),
        max_shared=max(check.shared.values(), default=0),
        raters=links,
    )


async def require_study(session: AsyncSession, name: str, *, for_update: bool = False) -> StudyRow:
    study = await StudyRepository(session).study_by_name(name, for_update=for_update)
    if study is None:
        raise StudyNotFound(f"no study named {name!r}", field="name")
    return study


async def study_rubric(session: AsyncSession, registry: RubricRegistry, study: StudyRow) -> Rubric:
    """The exact rubric the study was created with (by content hash)."""
    try:
        rubric: Rubric | None = registry.resolve(study.rubric_ref)
    except RubricNotFound:  # a rubric removed from the registry since: the stored copy still answers
        rubric = None
    if rubric is None or rubric.content_hash != study.rubric_hash:
        rubric = await RubricRepository(session).get_by_hash(study.rubric_hash)
    if rubric is None:
        raise StudyNotFound(f"the rubric of study {study.name!r} ({study.rubric_ref}) is not available")
    return rubric


async def study_status(session: AsyncSession, name: str) -> StudyStatus:
    """Progress per rater and in total."""
    repo = StudyRepository(session)
    study = await require_study(session, name)
    counts = {c.rater_id: c for c in await repo.counts(study.id)}
    seconds = await repo.seconds_done(study.id)
    raters: list[RaterProgress] = []
    for rater in await repo.raters(study.id):
        c = counts.get(rater.id)
        assigned, done, skipped = (c.assigned, c.done, c.skipped) if c else (0, 0, 0)
        spent = seconds.get(rater.id)
        raters.append(
            RaterProgress(
                name=rater.name,
                rater=human_rater(rater.name),
                assigned=assigned,
                done=done,
                skipped=skipped,
                pending=assigned - done - skipped,
                seconds_median=statistics.median(spent) if spent else None,
                last_active=c.last_active if c else None,
            )
        )
    return StudyStatus(
        id=study.id,
        name=study.name,
        rubric=study.rubric_ref,
        rubric_hash=study.rubric_hash,
        state="closed" if study.state == "closed" else "open",
        per_sample=study.per_sample,
        calibration=study.calibration,
        samples=len(await repo.sample_hashes(study.id)),
        assigned=sum(r.assigned for r in raters),
        done=sum(r.done for r in raters),
        skipped=sum(r.skipped for r in raters),
        created_at=study.created_at,
        closed_at=study.closed_at,
        raters=raters,
    )


async def close_study(session: AsyncSession, name: str) -> StudyStatus:
    """Close the study: its ratings stay, corrections and new ratings are refused from now on."""
    study = await require_study(session, name, for_update=True)
    if study.state != "closed":
        study.state = "closed"
        study.closed_at = utcnow()
        await session.flush()
    return await study_status(session, name)


async def renew_link(session: AsyncSession, name: str, rater_name: str, *, base_url: str) -> RaterLink:
    """A new token for a rater who lost their link; the old link stops working at once."""
    repo = StudyRepository(session)
    study = await require_study(session, name)
    rater = next((r for r in await repo.raters(study.id) if r.name == rater_name), None)
    if rater is None:
        raise StudyNotFound(f"study {name!r} has no rater {rater_name!r}", field="rater")
    token = new_token()
    await repo.set_token_hash(rater.id, hash_token(token))
    total, _, _ = await repo.rater_counts(rater.id)
    return RaterLink(
        name=rater.name, rater=human_rater(rater.name), assigned=total, token=token, link=rater_link(base_url, token)
    )


async def export_items(session: AsyncSession, name: str) -> list[ItemRecord]:
    """Every assignment with its scores, comments, skip reason, times: what the ratings table does not hold."""
    study = await require_study(session, name)
    return [
        ItemRecord(
            study=study.name,
            rater=human_rater(rater),
            position=item.position,
            sample_id=item.sample_id,
            sample_hash=item.sample_hash,
            state=item_out(item).state,
            scores=dict(item.scores or {}),
            comments=dict(item.comments or {}),
            skip_reason=item.skip_reason,
            seconds_spent=item.seconds_spent,
            opened_at=item.opened_at,
            first_submitted_at=item.first_submitted_at,
            submitted_at=item.submitted_at,
        )
        for item, rater in await StudyRepository(session).items_with_raters(study.id)
    ]


async def report_raters(session: AsyncSession, study: StudyRow) -> list[str]:
    """The raters an agreement report of the study compares: its humans with ratings, the judges, the reward
    models (everyone else's humans are left out)."""
    humans = {human_rater(r.name) for r in await StudyRepository(session).raters(study.id)}
    available = await RatingRepository(session).raters(study.rubric_hash)
    return [r for r in available if r in humans or r.startswith(("judge:", "rm:"))]


# --- the rater's side ----------------------------------------------------------------------------------------


async def rater_context(session: AsyncSession, token: str | None) -> RaterContext:
    """The rater a token names; :class:`InvalidRaterToken` for a missing or unknown one."""
    if not token:
        raise InvalidRaterToken(f"missing rater token (send it in the {TOKEN_HEADER} header)", field=TOKEN_HEADER)
    if len(token) > _MAX_TOKEN_CHARS:
        raise InvalidRaterToken("unknown rater token", field=TOKEN_HEADER)
    found = await StudyRepository(session).rater_by_token_hash(hash_token(token))
    if found is None:
        raise InvalidRaterToken("unknown rater token", field=TOKEN_HEADER)
    return RaterContext(rater=found[0], study=found[1])


async def progress(session: AsyncSession, ctx: RaterContext) -> Progress:
    total, done, skipped = await StudyRepository(session).rater_counts(ctx.rater.id)
    return Progress(total=total, done=done, skipped=skipped)


async def current_position(session: AsyncSession, ctx: RaterContext) -> int:
    """Where the rater resumes: the first pending item, else the first skipped one, else the first."""
    repo = StudyRepository(session)
    for state in ("pending", "skipped"):
        position = await repo.first_position(ctx.rater.id, state)
        if position is not None:
            return position
    return 1


async def positions(session: AsyncSession, ctx: RaterContext, state: str) -> list[int]:
    """The rater's positions in a state (e.g. the skipped ones, to revisit)."""
    return await StudyRepository(session).positions(ctx.rater.id, state)


async def get_item(
    session: AsyncSession, ctx: RaterContext, position: int, *, for_update: bool = False
) -> StudyItemRow:
    item = await StudyRepository(session).item(ctx.rater.id, position, for_update=for_update)
    if item is None:
        raise ItemNotFound(f"you have no item {position}", field="position")
    return item


def item_out(item: StudyItemRow) -> ItemOut:
    draft = item.draft or None
    return ItemOut(
        position=item.position,
        state="done" if item.state == "done" else "skipped" if item.state == "skipped" else "pending",
        sample_id=item.sample_id,
        scores=dict(item.scores or {}),
        comments=dict(item.comments or {}),
        draft=ItemDraft(scores=draft.get("scores", {}), comments=draft.get("comments", {}), elapsed=item.seconds_spent)
        if draft
        else None,
        skip_reason=item.skip_reason,
        seconds_spent=item.seconds_spent,
        submitted_at=item.submitted_at,
    )


async def sample_content(session: AsyncSession, item: StudyItemRow) -> dict[str, object]:
    content = await StudyRepository(session).sample_content(item.sample_hash)
    return content or {}


def _require_open(ctx: RaterContext) -> None:
    if ctx.closed:
        raise StudyClosed(f"study {ctx.study.name!r} is closed: its ratings can no longer change", field="study")


def _check_axes(rubric: Rubric, draft: ItemDraft, *, complete: bool) -> dict[str, str]:
    """Known axes only; every axis when ``complete``. Returns the non-empty comments."""
    keys = rubric.axis_keys
    for axis in draft.scores:
        if axis not in keys:
            raise InvalidItem(f"axis {axis!r} is not in rubric {rubric.ref}", field=f"scores.{axis}")
    for axis in draft.comments:
        if axis not in keys:
            raise InvalidItem(f"axis {axis!r} is not in rubric {rubric.ref}", field=f"comments.{axis}")
    if complete:
        missing = [axis for axis in keys if axis not in draft.scores]
        if missing:
            raise InvalidItem(f"no score for {len(missing)} axes: {', '.join(missing)}", field=f"scores.{missing[0]}")
    return {axis: text.strip() for axis, text in draft.comments.items() if text.strip()}


def _touch(item: StudyItemRow, elapsed: float) -> None:
    now = utcnow()
    if elapsed > item.seconds_spent:  # the page's running total: a retry or an older request changes nothing
        item.seconds_spent = elapsed
    if item.opened_at is None:
        item.opened_at = now - timedelta(seconds=item.seconds_spent)
    item.updated_at = now


async def save_draft(
    session: AsyncSession, ctx: RaterContext, rubric: Rubric, position: int, draft: ItemDraft
) -> ItemOut:
    """Autosave: partial scores and comments of the item, nothing in the ratings table yet."""
    _require_open(ctx)
    _check_axes(rubric, draft, complete=False)
    item = await get_item(session, ctx, position, for_update=True)
    item.draft = {"scores": dict(draft.scores), "comments": dict(draft.comments)}
    _touch(item, draft.elapsed)
    await session.flush()
    return item_out(item)


async def _result(session: AsyncSession, ctx: RaterContext, item: StudyItemRow, *, reveal: bool) -> ActionResult:
    judges = await judge_scores(session, ctx, item) if reveal and ctx.study.calibration else None
    return ActionResult(
        item=item_out(item),
        progress=await progress(session, ctx),
        next_position=await StudyRepository(session).next_position(ctx.rater.id, item.position),
        reveal=judges,
    )


async def submit(
    session: AsyncSession, ctx: RaterContext, rubric: Rubric, position: int, body: ItemSubmit
) -> ActionResult:
    """Rate every axis of the item: ``human:<name>`` run-0 ratings, replacing earlier ones (a retry is a no-op)."""
    _require_open(ctx)
    comments = _check_axes(rubric, body, complete=True)
    item = await get_item(session, ctx, position, for_update=True)
    scores = {axis: body.scores[axis] for axis in rubric.axis_keys}
    ratings = [
        Rating(sample_hash=item.sample_hash, rater=ctx.rater_key, axis=axis, score=score, run=0)
        for axis, score in scores.items()
    ]
    await save_ratings(session, ctx.study.rubric_hash, ratings)
    changed = (item.scores or {}) != scores or (item.comments or {}) != comments or item.state != "done"
    _touch(item, body.elapsed)
    if changed:
        item.submitted_at = item.updated_at
        if item.first_submitted_at is None:
            item.first_submitted_at = item.updated_at
    item.state = "done"
    item.skip_reason = None
    item.comments = comments
    item.scores = scores
    item.draft = {}
    await session.flush()
    return await _result(session, ctx, item, reveal=True)


async def skip(session: AsyncSession, ctx: RaterContext, position: int, body: ItemSkip) -> ActionResult:
    """Set an item aside with a reason; it can still be rated later."""
    _require_open(ctx)
    item = await get_item(session, ctx, position, for_update=True)
    if item.state == "done":
        raise ItemConflict("this item is already rated: correct its scores instead of skipping it", field="position")
    item.state = "skipped"
    item.skip_reason = body.reason.strip()
    _touch(item, body.elapsed)
    await session.flush()
    return await _result(session, ctx, item, reveal=False)


async def judge_scores(session: AsyncSession, ctx: RaterContext, item: StudyItemRow) -> list[JudgeScores]:
    """Calibration mode: the judges' scores on a sample the rater has rated; refused in a blind study or before."""
    if not ctx.study.calibration:
        raise ItemConflict("this study is blind to the judges' scores", field="calibration")
    if item.state != "done":
        raise ItemConflict("the judges' scores are shown once you have rated this item", field="position")
    found = await StudyRepository(session).judge_scores(ctx.study.rubric_hash, item.sample_hash)
    return [JudgeScores(judge=judge, scores=scores) for judge, scores in sorted(found.items())]


def report_open(ctx: RaterContext, progress: Progress) -> bool:
    """Whether the rater may see the live agreement report: once their own work is done (or the study is
    closed, or in calibration mode), so that seeing it cannot bias ratings still to come."""
    return ctx.closed or ctx.study.calibration or progress.pending == 0
