"""The live agreement report of a study: its raters beside the judges and reward models, from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from judge.agreement.errors import NotEnoughRatings
from judge.studies.models import StudyRow
from judge.studies.service import report_raters
from rubrics.schema import Rubric

if TYPE_CHECKING:
    from judge.agreement.report import AgreementReport


async def study_report(
    sessions: async_sessionmaker[AsyncSession], rubric: Rubric, study: StudyRow, *, n_boot: int, seed: int = 0
) -> AgreementReport:
    """The agreement report of everything stored now: each submission shows in the next report."""
    from judge.agreement.studies import agreement_from_store

    async with sessions() as session:
        raters = await report_raters(session, study)
    if len(raters) < 2:
        raise NotEnoughRatings("fewer than two raters have rated this study's rubric yet", field="raters")
    return await agreement_from_store(sessions, rubric, raters, n_boot=n_boot, seed=seed)


def report_html(report: AgreementReport) -> str:
    """The report's one self-contained HTML page, without figures (those take matplotlib seconds per page)."""
    from judge.agreement.report import render_html

    return render_html(report, [])
