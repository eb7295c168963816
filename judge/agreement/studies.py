"""Agreement studies end to end: import ratings, compute a report from the store, re-score for stability.

Shared by the CLI and the API. The statistics (numpy, scipy) are imported when a report is computed, not
when this module is imported.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.agreement.errors import NotEnoughRatings
from judge.agreement.ratings import RatingIssue, RatingsFormat, read_ratings
from judge.agreement.repository import AgreementRepository
from judge.agreement.store import (
    ImportOutcome,
    SampleIndex,
    judge_rater,
    select_raters,
    store_import,
    verdict_rows,
)
from judge.profiles import JudgeProfile
from judge.samples import Sample, SampleIn, normalise
from judge.scorer import Scorer
from judge.store.ratings_repository import Rating as StoredRating
from judge.store.ratings_repository import RatingRepository
from judge.verdicts import Verdict
from rubrics.schema import Rubric

if TYPE_CHECKING:
    from judge.agreement.report import AgreementReport
    from judge.agreement.stability import PositionReport, StabilityReport

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def _first_error(exc: ValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or None
    return where, str(first.get("msg"))


def read_sample_index(path: Path) -> SampleIndex:
    """Samples to resolve ``sample_id`` keys: input lines (``SampleIn``, hashed here) or ``score`` output lines
    (``id`` with ``sample_hash``). Bad lines are kept as issues with their line numbers."""
    index = SampleIndex()
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                index.issues.append(RatingIssue(line=number, message=f"invalid JSON: {exc}"))
                continue
            if not isinstance(value, dict):
                index.issues.append(RatingIssue(line=number, message="expected a JSON object"))
                continue
            digest = value.get("sample_hash")
            if isinstance(digest, str) and "messages" not in value:
                if not _HASH_RE.match(digest):
                    index.issues.append(RatingIssue(line=number, field="sample_hash", message="not a content hash"))
                else:
                    sample_id = value.get("id")
                    index.add(str(sample_id) if sample_id is not None else None, digest)
                continue
            try:
                sample = normalise(SampleIn.model_validate(value))
            except ValidationError as exc:
                where, message = _first_error(exc)
                index.issues.append(RatingIssue(line=number, field=where, message=message))
                continue
            index.add(sample.id, sample.hash, sample)
    return index


async def import_file(
    sessions: async_sessionmaker[AsyncSession],
    rubric: Rubric,
    path: Path,
    *,
    samples: SampleIndex | None = None,
    format: RatingsFormat | None = None,
) -> ImportOutcome:
    """Validate a ratings file against the rubric and upsert its good rows in one transaction."""
    result = read_ratings(path, rubric, format=format)
    async with sessions() as session:
        outcome = await store_import(session, rubric, result, samples)
        await session.commit()
    return outcome


async def agreement_from_store(
    sessions: async_sessionmaker[AsyncSession],
    rubric: Rubric,
    raters: str | Sequence[str],
    *,
    n_boot: int,
    seed: int = 0,
) -> AgreementReport:
    """The agreement report of the selected raters on every rating stored under the rubric.

    The statistics run in a worker thread: with thousands of samples and bootstrap resamples they take
    seconds of CPU, which must not stall an event loop serving scoring calls.
    """
    from judge.agreement.matrix import RatingMatrix
    from judge.agreement.service import agreement_from_matrix

    async with sessions() as session:
        selected = await select_raters(session, rubric, raters)
        columns = await AgreementRepository(session).rating_columns(rubric.content_hash, selected)

    def compute() -> AgreementReport:
        matrix = RatingMatrix.from_columns(
            columns.sample_hash, columns.rater, columns.axis, columns.score, columns.run,
            axes=rubric.axis_keys, raters=selected, sort_samples=True,
        )  # fmt: skip
        return agreement_from_matrix(matrix, rubric, n_boot=n_boot, seed=seed)

    return await asyncio.to_thread(compute)


# --- stability -----------------------------------------------------------------------------------------------


async def rescore_runs(
    scorer: Scorer,
    rubric: Rubric,
    profile: JudgeProfile,
    samples: Sequence[Sample],
    runs: int,
    *,
    on_run: Callable[[int], None] | None = None,
) -> list[list[Verdict]]:
    """Judge the samples ``runs`` times, one run after another, with the cache off: verdicts per run."""
    out: list[list[Verdict]] = []
    for run in range(runs):
        batch = await scorer.score(rubric, profile, samples, use_cache=False)
        out.append([item.verdict for item in batch.items if item.verdict is not None])
        if on_run is not None:
            on_run(run)
    return out


def run_ratings(verdicts_per_run: Sequence[Sequence[Verdict]]) -> list[StoredRating]:
    """Run ``i``'s verdicts as ratings with ``run = i``; a partial verdict's ok axes count (it is what was said)."""
    rows: list[StoredRating] = []
    for run, verdicts in enumerate(verdicts_per_run):
        rows += verdict_rows(verdicts, run=run, complete_only=False)
    return rows


async def store_runs(session: AsyncSession, rubric: Rubric, profile: JudgeProfile, rows: Sequence[StoredRating]) -> int:
    """Replace the profile's ratings on these samples with the study's runs.

    The newest complete verdict (the last run's) would otherwise speak for run 0, and an earlier study may have
    left more runs: deleting first and writing runs 0..n-1 as rows (newer than the verdicts, so they win; see
    :mod:`judge.store.judge_ratings`) leaves exactly this study's runs.
    """
    hashes = sorted({r.sample_hash for r in rows})
    await AgreementRepository(session).delete_ratings(rubric.content_hash, judge_rater(profile.name), hashes)
    return await RatingRepository(session).add_many(rows)


async def stability_study(
    scorer: Scorer,
    sessions: async_sessionmaker[AsyncSession] | None,
    rubric: Rubric,
    profile: JudgeProfile,
    samples: Sequence[Sample],
    runs: int,
    *,
    n_boot: int = 200,
    seed: int = 0,
    on_run: Callable[[int], None] | None = None,
) -> StabilityReport:
    """Re-score ``samples`` ``runs`` times, store the runs as ratings, and report the judge's self-agreement."""
    from judge.agreement.stability import self_agreement

    if runs < 2:
        raise NotEnoughRatings("a stability study needs two or more runs", field="runs")
    unique = list({s.hash: s for s in samples}.values())
    if not unique:
        raise NotEnoughRatings("no samples to re-score", field="samples")
    rows = run_ratings(await rescore_runs(scorer, rubric, profile, unique, runs, on_run=on_run))
    if sessions is not None:
        async with sessions() as session:
            await store_runs(session, rubric, profile, rows)
            await session.commit()
    # From the runs just judged rather than the store, so that concurrent scoring cannot mix in.
    report = functools.partial(self_agreement, rows, rubric, judge_rater(profile.name), n_boot=n_boot, seed=seed)
    return await asyncio.to_thread(report)


async def positions_from_store(
    sessions: async_sessionmaker[AsyncSession], rubric: Rubric, judge: str, *, n_boot: int = 200, seed: int = 0
) -> PositionReport:
    """How a group-mode judge's scores move with a response's display position, from its stored verdicts."""
    from judge.agreement.stability import position_effects

    async with sessions() as session:
        records = await AgreementRepository(session).group_scores(rubric.content_hash, judge)
    return await asyncio.to_thread(functools.partial(position_effects, records, rubric, n_boot=n_boot, seed=seed))
