"""Rating studies, the admin side (API key): create, status, close, renew a rater's link, live report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.deps import RuntimeDep, SessionDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from judge.samples import normalise
from judge.service import check_limits
from judge.settings import Settings
from judge.studies import service
from judge.studies.report import report_html, study_report
from judge.studies.schemas import ItemRecord, RaterLink, StudyCreate, StudyCreated, StudyStatus

router = APIRouter(prefix="/studies", tags=["studies"])


def base_url(settings: Settings, request: Request) -> str:
    """Where raters' browsers reach the service: the configured public URL, else this request's own."""
    return settings.study_public_url or str(request.base_url)


@router.post("", status_code=201, response_model=StudyCreated, responses=ERROR_RESPONSES)
async def create_study(
    body: StudyCreate, request: Request, runtime: RuntimeDep, session: SessionDep
) -> FastJSONResponse:
    """Create a study: each sample gets ``per_sample`` raters, every pair of raters shares samples.

    The answer carries each rater's personal link; it is shown only here (tokens are stored hashed).
    """
    check_limits(runtime.settings, body.samples)
    rubric = runtime.rubrics.resolve(body.rubric)
    samples = [normalise(sample) for sample in body.samples]
    created = await service.create_study(session, rubric, body, samples, base_url=base_url(runtime.settings, request))
    await session.commit()
    return FastJSONResponse(created.model_dump(mode="json"), status_code=201)


@router.get("", response_model=list[StudyStatus], responses=ERROR_RESPONSES)
async def list_studies(session: SessionDep) -> FastJSONResponse:
    from judge.studies.repository import StudyRepository

    names = [study.name for study in await StudyRepository(session).list_studies()]
    return FastJSONResponse([(await service.study_status(session, n)).model_dump(mode="json") for n in names])


@router.get("/{name}", response_model=StudyStatus, responses=ERROR_RESPONSES)
async def study_status(name: str, session: SessionDep) -> FastJSONResponse:
    """Progress per rater: assigned, done, skipped, pending, median seconds per item, last activity."""
    return FastJSONResponse((await service.study_status(session, name)).model_dump(mode="json"))


@router.get("/{name}/items", response_model=list[ItemRecord], responses=ERROR_RESPONSES)
async def study_items(name: str, session: SessionDep) -> FastJSONResponse:
    """Every assignment: rater, sample, state, scores, per-axis comments, skip reason, seconds spent, times."""
    return FastJSONResponse([r.model_dump(mode="json") for r in await service.export_items(session, name)])


@router.post("/{name}/close", response_model=StudyStatus, responses=ERROR_RESPONSES)
async def close_study(name: str, session: SessionDep) -> FastJSONResponse:
    """Close the study: ratings stay, and no rater can add or correct any from now on."""
    status = await service.close_study(session, name)
    await session.commit()
    return FastJSONResponse(status.model_dump(mode="json"))


@router.post("/{name}/raters/{rater}/link", response_model=RaterLink, responses=ERROR_RESPONSES)
async def renew_link(
    name: str, rater: str, request: Request, runtime: RuntimeDep, session: SessionDep
) -> FastJSONResponse:
    """A new personal link for a rater who lost theirs; the old one stops working."""
    link = await service.renew_link(session, name, rater, base_url=base_url(runtime.settings, request))
    await session.commit()
    return FastJSONResponse(link.model_dump(mode="json"))


@router.get("/{name}/report", response_class=HTMLResponse, responses=ERROR_RESPONSES)
async def live_report(
    name: str,
    runtime: RuntimeDep,
    session: SessionDep,
    n_boot: Annotated[int | None, Query(ge=0, le=2000)] = None,
) -> HTMLResponse:
    """The live agreement report (HTML) of the study's raters beside the judges and reward models."""
    study = await service.require_study(session, name)
    rubric = await service.study_rubric(session, runtime.rubrics, study)
    boot = min(runtime.settings.agreement_n_boot if n_boot is None else n_boot, runtime.settings.agreement_max_n_boot)
    report = await study_report(runtime.sessions, rubric, study, n_boot=boot)
    return HTMLResponse(report_html(report), headers={"Cache-Control": "no-store"})
