"""The raters' workbench: the rating page (server-rendered, rubric and sample escaped by Jinja's autoescape),
its JSON calls (the rater token in the ``X-Rater-Token`` header), the live report, and the static files.

A rater's personal link carries their token in the path (``/ui/r/<token>``): opening it only reads. Every call
that changes something needs the token in a header, which a cross-site form or link cannot send. Pages are
served with a Content-Security-Policy that allows only this service's own script and styles, and with
``Referrer-Policy: no-referrer`` so that the link never leaks to another site.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from api.deps import RuntimeDep, SessionDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from api.ui.i18n import STRINGS, Lang, pick
from judge.agreement.errors import NotEnoughRatings, RaterNotFound
from judge.studies import service
from judge.studies.errors import InvalidRaterToken, ItemNotFound
from judge.studies.report import report_html, study_report
from judge.studies.schemas import ActionResult, ItemDraft, ItemOut, ItemSkip, ItemSubmit, JudgeScores, Progress
from judge.studies.service import TOKEN_HEADER, RaterContext
from rubrics.schema import Rubric

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
# The agreement report is one self-contained page with inline styles and data-URI figures, and no script.
REPORT_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
}
LANG_COOKIE = "rj_lang"

pages = APIRouter(prefix="/ui", include_in_schema=False)
api = APIRouter(prefix="/ui/api", tags=["workbench"])

TokenHeader = Annotated[str | None, Header(alias=TOKEN_HEADER, description="The rater's personal token.")]


def _asset_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


ASSET_VERSION = _asset_version()


def _lang(request: Request, lang: str | None) -> Lang:
    return pick(lang if lang is not None else request.cookies.get(LANG_COOKIE))


def _render(
    request: Request, name: str, lang: Lang, context: dict[str, Any], *, status: int = 200, set_lang: bool = False
) -> HTMLResponse:
    t = STRINGS[lang]
    response = templates.TemplateResponse(
        request,
        name,
        {"t": t, "lang": lang, "other_lang": "en" if lang == "zh" else "zh", "v": ASSET_VERSION, **context},
        status_code=status,
        headers=PAGE_HEADERS,
    )
    if set_lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
    return response


def _message(
    request: Request, lang: Lang, title: str, body: str, *, status: int, back: str | None = None
) -> HTMLResponse:
    return _render(request, "message.html", lang, {"title": title, "body": body, "back": back}, status=status)


def _axes(rubric: Rubric, lang: Lang) -> list[dict[str, Any]]:
    layers = {layer.key: getattr(layer.title, lang) for layer in rubric.layers}
    return [
        {
            "key": axis.key,
            "layer": axis.layer,
            "layer_title": layers.get(axis.layer, axis.layer),
            "title": getattr(axis.title, lang),
            "description": getattr(axis.description, lang),
            "anchors": [(level, getattr(text, lang)) for level, text in sorted(axis.anchors.items())],
        }
        for axis in rubric.axes
    ]


def _messages(content: dict[str, Any], t: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for message in content.get("messages") or []:
        role = str(message.get("role", ""))
        out.append({"role": role, "label": t.get(f"role_{role}", role), "content": str(message.get("content", ""))})
    return out


# --- pages ---------------------------------------------------------------------------------------------------


@pages.get("/")
async def landing(request: Request, lang: str | None = None) -> HTMLResponse:
    chosen = _lang(request, lang)
    t = STRINGS[chosen]
    return _message(request, chosen, t["landing_title"], t["landing_body"], status=200)


@pages.get("/r/{token}")
async def rating_page(
    request: Request,
    token: str,
    runtime: RuntimeDep,
    session: SessionDep,
    i: Annotated[int | None, Query(ge=1)] = None,
    lang: str | None = None,
) -> Response:
    """The rater's page: one item at a time, or a summary once every item is done or skipped."""
    chosen = _lang(request, lang)
    t = STRINGS[chosen]
    try:
        ctx = await service.rater_context(session, token)
    except InvalidRaterToken:
        return _message(request, chosen, t["bad_link_title"], t["bad_link_body"], status=404)
    progress = await service.progress(session, ctx)
    position = i if i is not None else await service.current_position(session, ctx)
    if i is None and progress.pending == 0:
        return await _finished(request, chosen, ctx, session, progress, token, set_lang=lang is not None)
    try:
        item = await service.get_item(session, ctx, position)
    except ItemNotFound:
        return _message(request, chosen, t["app"], t["no_item"], status=404)
    rubric = await service.study_rubric(session, runtime.rubrics, ctx.study)
    content = await service.sample_content(session, item)
    out = service.item_out(item)
    # What the page starts from: the unsubmitted changes if there are any, else what was submitted.
    scores = out.draft.scores if out.draft is not None else out.scores
    comments = out.draft.comments if out.draft is not None else out.comments
    # A rated item changed since its submission: the statistics still read the submitted scores, so say so.
    unsubmitted = out.state == "done" and (
        scores != out.scores or {k: v.strip() for k, v in comments.items() if v.strip()} != out.comments
    )
    config = {
        "token": token,
        "study": ctx.study.id,
        "rater": ctx.rater.id,
        "position": position,
        "total": progress.total,
        "state": out.state,
        "closed": ctx.closed,
        "calibration": ctx.study.calibration,
        "axes": rubric.axis_keys,
        "scores": scores,
        "comments": comments,
        "submitted": out.scores,
        "elapsed": out.seconds_spent,
        "page": f"/ui/r/{token}",
        "api": "/ui/api",
        "lang": chosen,
        "t": {
            k: t[k]
            for k in ("saved", "saving", "offline", "unsaved_local", "failed", "missing", "reveal_you", "unsubmitted")
        },
        "axis_titles": {a.key: getattr(a.title, chosen) for a in rubric.axes},
    }
    return _render(
        request,
        "rate.html",
        chosen,
        {
            "study": ctx.study,
            "rater": ctx.rater.name,
            "item": out,
            "progress": progress,
            "position": position,
            "axes": _axes(rubric, chosen),
            "scores": scores,
            "comments": comments,
            "messages": _messages(content, t),
            "reasoning": str(content.get("reasoning") or ""),
            "response": str(content.get("response") or ""),
            "config": config,
            "page": f"/ui/r/{token}",
            "report_open": service.report_open(ctx, progress),
            "unsubmitted": unsubmitted,
        },
        set_lang=lang is not None,
    )


async def _finished(
    request: Request,
    lang: Lang,
    ctx: RaterContext,
    session: SessionDep,
    progress: Progress,
    token: str,
    *,
    set_lang: bool,
) -> HTMLResponse:
    skipped = await service.positions(session, ctx, "skipped")
    return _render(
        request,
        "finished.html",
        lang,
        {
            "study": ctx.study,
            "rater": ctx.rater.name,
            "progress": progress,
            "skipped": skipped,
            "page": f"/ui/r/{token}",
        },
        set_lang=set_lang,
    )


@pages.get("/r/{token}/report")
async def rater_report(
    request: Request, token: str, runtime: RuntimeDep, session: SessionDep, lang: str | None = None
) -> Response:
    """The live agreement report, once the rater's own items are done (blind rating until then)."""
    chosen = _lang(request, lang)
    t = STRINGS[chosen]
    try:
        ctx = await service.rater_context(session, token)
    except InvalidRaterToken:
        return _message(request, chosen, t["bad_link_title"], t["bad_link_body"], status=404)
    progress = await service.progress(session, ctx)
    if not service.report_open(ctx, progress):
        body = t["report_locked"].format(pending=progress.pending)
        return _message(request, chosen, t["report"], body, status=403, back=f"/ui/r/{token}")
    rubric = await service.study_rubric(session, runtime.rubrics, ctx.study)
    try:
        report = await study_report(runtime.sessions, rubric, ctx.study, n_boot=runtime.settings.agreement_n_boot)
    except (NotEnoughRatings, RaterNotFound):
        return _message(request, chosen, t["report"], t["report_empty"], status=200, back=f"/ui/r/{token}")
    return HTMLResponse(report_html(report), headers=REPORT_HEADERS)


@pages.get("/r")
async def no_token() -> RedirectResponse:
    return RedirectResponse("/ui/")


# --- the page's calls ----------------------------------------------------------------------------------------


async def _rater(session: SessionDep, token: str | None) -> RaterContext:
    return await service.rater_context(session, token)


async def _rater_and_rubric(session: SessionDep, runtime: RuntimeDep, token: str | None) -> tuple[RaterContext, Rubric]:
    """The token's rater and the exact rubric their study was created with: what a rating is checked against."""
    ctx = await _rater(session, token)
    return ctx, await service.study_rubric(session, runtime.rubrics, ctx.study)


async def _committed(session: SessionDep, out: BaseModel) -> FastJSONResponse:
    """Commit the rater's change and answer with its result (the route is the transaction's edge)."""
    await session.commit()
    return FastJSONResponse(out.model_dump(mode="json"))


@api.get("/progress", response_model=Progress, responses=ERROR_RESPONSES)
async def get_progress(session: SessionDep, x_rater_token: TokenHeader = None) -> FastJSONResponse:
    ctx = await _rater(session, x_rater_token)
    return FastJSONResponse((await service.progress(session, ctx)).model_dump(mode="json"))


@api.get("/items/{position}", response_model=ItemOut, responses=ERROR_RESPONSES)
async def get_item(position: int, session: SessionDep, x_rater_token: TokenHeader = None) -> FastJSONResponse:
    """One of the rater's own items (another rater's items are never found)."""
    ctx = await _rater(session, x_rater_token)
    item = await service.get_item(session, ctx, position)
    return FastJSONResponse(service.item_out(item).model_dump(mode="json"))


@api.put("/items/{position}/draft", response_model=ItemOut, responses=ERROR_RESPONSES)
async def save_draft(
    position: int, body: ItemDraft, runtime: RuntimeDep, session: SessionDep, x_rater_token: TokenHeader = None
) -> FastJSONResponse:
    """Autosave partial scores and comments (idempotent: the same body twice leaves the same state)."""
    ctx, rubric = await _rater_and_rubric(session, runtime, x_rater_token)
    return await _committed(session, await service.save_draft(session, ctx, rubric, position, body))


@api.post("/items/{position}/submit", response_model=ActionResult, responses=ERROR_RESPONSES)
async def submit(
    position: int, body: ItemSubmit, runtime: RuntimeDep, session: SessionDep, x_rater_token: TokenHeader = None
) -> FastJSONResponse:
    """Rate every axis; resubmitting replaces the rating (idempotent per sample, rater, axis and run)."""
    ctx, rubric = await _rater_and_rubric(session, runtime, x_rater_token)
    return await _committed(session, await service.submit(session, ctx, rubric, position, body))


@api.post("/items/{position}/skip", response_model=ActionResult, responses=ERROR_RESPONSES)
async def skip(
    position: int, body: ItemSkip, session: SessionDep, x_rater_token: TokenHeader = None
) -> FastJSONResponse:
    ctx = await _rater(session, x_rater_token)
    return await _committed(session, await service.skip(session, ctx, position, body))


@api.get("/items/{position}/judges", response_model=list[JudgeScores], responses=ERROR_RESPONSES)
async def judges(position: int, session: SessionDep, x_rater_token: TokenHeader = None) -> FastJSONResponse:
    """Calibration mode only, and only for an item the rater has rated: the judges' scores on it."""
    ctx = await _rater(session, x_rater_token)
    item = await service.get_item(session, ctx, position)
    found = await service.judge_scores(session, ctx, item)
    return FastJSONResponse([j.model_dump(mode="json") for j in found])


_LINK_TOKEN = re.compile(r"(/ui/r/)[^/?\s]+")


class RedactRaterLinks(logging.Filter):
    """Access logs show ``/ui/r/***`` instead of a rater's token (the path of a personal link is a secret)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_LINK_TOKEN.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install(app: FastAPI) -> None:
    """Mount the workbench: its pages, its calls and its static files (no API key: raters use their token)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactRaterLinks) for f in access.filters):
        access.addFilter(RedactRaterLinks())
    app.include_router(pages)
    app.include_router(api)
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")
