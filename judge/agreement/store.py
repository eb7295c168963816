"""Ratings in the store: judge verdicts, imported human ratings and reward-model predictions.

Judge verdicts are ratings without a second copy: rater ``judge:<profile>`` run 0 on a sample is the newest
*complete* verdict of that profile on it, read from ``verdicts.axes`` when a study asks
(:mod:`judge.store.judge_ratings`), so ``judge:*`` raters are listed like any other rater, with no step between
scoring and a study, and a verdict costs no rating rows. Human and reward-model ratings have their own rows.
A stability study writes its runs 0..n-1 as rows of ``judge:<profile>``; rows newer than the newest verdict
speak for run 0 (see :mod:`judge.agreement.studies`).

Sample ids are per request and never stored, so ratings keyed by ``sample_id`` are resolved against samples
given alongside them (a samples file in the CLI, ``samples`` in ``POST /v1/ratings``); content hashes are
accepted directly. Nothing here imports numpy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from judge.agreement.errors import NoValidRatings, RaterNotFound
from judge.agreement.ratings import (
    ImportedRating,
    ImportResult,
    Rating,
    RatingIssue,
    RatingLike,
    expand_raters,
    validate_records,
    verdict_ratings,
)
from judge.agreement.repository import AgreementRepository
from judge.samples import Sample
from judge.store.ratings_repository import Rating as StoredRating
from judge.store.ratings_repository import RatingRepository
from judge.verdicts import Verdict
from rubrics.schema import LEVELS, Rubric

JUDGE_RUN = 0


def judge_rater(profile: str) -> str:
    return f"judge:{profile}"


def reward_model_rater(name: str, version: int | str) -> str:
    return f"rm:{name}@{version}"


def to_stored(rubric_hash: str, ratings: Iterable[RatingLike], *, verdict_id: str | None = None) -> list[StoredRating]:
    """Ratings as the store's rows under a rubric."""
    return [
        StoredRating(rubric_hash, r.sample_hash, r.rater, r.axis, float(r.score), r.run, verdict_id) for r in ratings
    ]


def verdict_rows(
    verdicts: Iterable[Verdict], *, run: int = JUDGE_RUN, complete_only: bool = True
) -> list[StoredRating]:
    """The ratings of judge verdicts (``judge:<profile>``, the integer score of every ok axis) as store rows."""
    rows: list[StoredRating] = []
    for verdict in verdicts:
        if complete_only and not verdict.complete:
            continue
        rows += to_stored(verdict.rubric_hash, verdict_ratings(verdict, run=run), verdict_id=verdict.id)
    return rows


async def save_ratings(session: AsyncSession, rubric_hash: str, ratings: Iterable[RatingLike]) -> int:
    """Insert or update ratings under a rubric; re-saving the same (sample, rater, axis, run) replaces it."""
    return await AgreementRepository(session).upsert_ratings(to_stored(rubric_hash, ratings))


# --- reward models -------------------------------------------------------------------------------------------


def reward_model_ratings(
    name: str,
    version: int | str,
    predictions: Mapping[str, Mapping[str, float | None]],
    *,
    rubric: Rubric | None = None,
    run: int = 0,
) -> list[Rating]:
    """A reward model's per-axis predictions (``{sample_hash: {axis: score}}``) as ``rm:<name>@<version>`` ratings.

    Scores may be continuous (expected values); they are clipped to the Likert range, and the statistics
    round them to the nearest level. A missing or non-finite prediction is left out, never replaced. With
    ``rubric``, an axis it does not have raises ``ValueError``. Store the result with :func:`save_ratings`.
    """
    rater = reward_model_rater(name, version)
    known = set(rubric.axis_keys) if rubric is not None else None
    low, high = float(min(LEVELS)), float(max(LEVELS))
    out: list[Rating] = []
    for sample_hash, axes in predictions.items():
        for axis, score in axes.items():
            if known is not None and axis not in known:
                raise ValueError(f"{rater}: axis {axis!r} is not in rubric {rubric.ref if rubric else ''}")
            if score is None or not math.isfinite(score):
                continue
            out.append(
                Rating(sample_hash=sample_hash, rater=rater, axis=axis, score=min(max(score, low), high), run=run)
            )
    return out


# --- imports -------------------------------------------------------------------------------------------------


@dataclass
class SampleIndex:
    """Sample ids mapped to content hashes, from samples given with an import."""

    hashes: dict[str, str] = field(default_factory=dict)
    # Ids that name samples with different content: a rating keyed by one of them cannot be placed.
    ambiguous: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    issues: list[RatingIssue] = field(default_factory=list)

    def add(self, sample_id: str | None, sample_hash: str, sample: Sample | None = None) -> None:
        if sample is not None:
            self.samples.append(sample)
        if sample_id is None:
            return
        known = self.hashes.get(sample_id)
        if known is not None and known != sample_hash:
            self.ambiguous[sample_id] = self.ambiguous.get(sample_id, 1) + 1
        else:
            self.hashes[sample_id] = sample_hash

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> SampleIndex:
        index = cls()
        for sample in samples:
            index.add(sample.id, sample.hash, sample)
        return index


def resolve_ids(result: ImportResult, index: SampleIndex) -> ImportResult:
    """Ratings keyed by ``sample_id`` get the content hash of the sample with that id; others become errors."""
    ambiguous: list[RatingIssue] = []
    rows: list[ImportedRating] = []
    for row in result.rows:
        if row.sample_hash is None and row.sample_id in index.ambiguous:
            count = index.ambiguous[row.sample_id]
            ambiguous.append(
                RatingIssue(
                    line=row.line,
                    field="sample_id",
                    message=f"{count} samples with different content have id {row.sample_id!r}; use sample_hash",
                )
            )
        else:
            rows.append(row)
    resolved = ImportResult(rows=rows, errors=result.errors).resolve_sample_ids(index.hashes)
    if ambiguous:
        resolved.errors = sorted([*resolved.errors, *ambiguous], key=lambda issue: issue.line)
    return resolved


def validate_items(items: Sequence[Any], rubric: Rubric) -> ImportResult:
    """Ratings given as JSON objects (an API body); an item's ``line`` is its 1-based position."""
    issues = [
        RatingIssue(line=i, message=f"expected a JSON object, got {type(item).__name__}")
        for i, item in enumerate(items, start=1)
        if not isinstance(item, dict)
    ]
    result = validate_records(((i, item) for i, item in enumerate(items, start=1) if isinstance(item, dict)), rubric)
    if issues:
        result.errors = sorted([*result.errors, *issues], key=lambda issue: issue.line)
    return result


@dataclass(frozen=True)
class ImportOutcome:
    accepted: int
    errors: list[RatingIssue]
    raters: dict[str, int]  # accepted ratings per rater

    def require_some(self, *, empty_field: str, field_of: Callable[[RatingIssue], str]) -> None:
        """Raise :class:`NoValidRatings` when no row was accepted, naming the first bad field (or ``empty_field``)."""
        if self.accepted:
            return
        if not self.errors:
            raise NoValidRatings("no ratings given", field=empty_field)
        shown = "; ".join(str(issue) for issue in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        raise NoValidRatings(f"no valid ratings: {shown}{more}", field=field_of(self.errors[0]))


async def store_import(
    session: AsyncSession, rubric: Rubric, result: ImportResult, index: SampleIndex | None = None
) -> ImportOutcome:
    """Resolve sample ids, store the rated samples' content and upsert the good rows; bad rows are returned."""
    index = index or SampleIndex()
    resolved = resolve_ids(result, index)
    ratings = resolved.ratings()
    if ratings:
        rated = {r.sample_hash for r in ratings}
        samples = [s for s in index.samples if s.hash in rated]
        if samples:
            await AgreementRepository(session).add_samples(samples)
        await save_ratings(session, rubric.content_hash, ratings)
    return ImportOutcome(
        accepted=len(ratings),
        errors=resolved.errors,
        raters=dict(sorted(Counter(r.rater for r in ratings).items())),
    )


# --- studies -------------------------------------------------------------------------------------------------


async def select_raters(session: AsyncSession, rubric: Rubric, raters: str | Sequence[str]) -> list[str]:
    """The raters with ratings under the rubric that ``raters`` (names, globs such as ``human:*``) select."""
    available = await RatingRepository(session).raters(rubric.content_hash)
    if not available:
        raise RaterNotFound(f"no ratings under rubric {rubric.ref}", field="raters")
    return expand_raters(raters, available)


async def load_ratings(
    session: AsyncSession, rubric: Rubric, raters: str | Sequence[str]
) -> tuple[list[str], list[StoredRating]]:
    """The selected raters and their ratings as rows (for a large study, read columns: see ``studies``)."""
    selected = await select_raters(session, rubric, raters)
    return selected, await RatingRepository(session).query(rubric.content_hash, selected)
