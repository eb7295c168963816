"""``rubric-judge study``: rating studies from a terminal (create, status, export, close, renew a link, list).

Registered on the main ``rubric-judge`` app by :func:`register`. The commands go through the same service as
``/v1/studies``; the raters rate in the browser, at the links ``study create`` prints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from judge.errors import InvalidSample, RubricJudgeError
from judge.samples import Sample, SampleIn, normalise
from judge.settings import Settings, get_settings
from judge.studies.schemas import RaterLink, StudyCreated, StudyStatus

study_app = typer.Typer(help="Rating studies: physicians rate samples in the browser (/ui/).", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
LOCAL_URL = "http://127.0.0.1:8000"


def _fail(exc: RubricJudgeError) -> typer.Exit:
    where = f" ({exc.field})" if exc.field else ""
    err_console.print(f"[red]{exc.type}{where}:[/red] {exc.message}")
    return typer.Exit(code=2)


def read_samples(path: Path) -> list[Sample]:
    """Samples, one JSON object a line (the input of ``score``); the first bad line stops with its number."""
    samples: list[Sample] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                samples.append(normalise(SampleIn.model_validate(orjson.loads(raw))))
            except orjson.JSONDecodeError as exc:
                raise InvalidSample(f"line {number} is not JSON: {exc}", field=f"line {number}") from exc
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())) or "sample"
                raise InvalidSample(f"line {number}: {first.get('msg')}", field=f"line {number}: {where}") from exc
    if not samples:
        raise InvalidSample(f"no samples in {path}", field="samples")
    return samples


def _run(work: Callable[[Settings, AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed transaction."""

    async def main() -> T:
        from judge.store.database import create_engine, make_session_factory

        settings = get_settings()
        engine = create_engine(settings.database_url, timeout_s=settings.db_timeout_s)
        try:
            async with make_session_factory(engine)() as session:
                result = await work(settings, session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except RubricJudgeError as exc:
        raise _fail(exc) from exc


def _links_table(links: list[RaterLink]) -> Table:
    table = Table(title="personal links (shown once: keep them, send each rater their own)")
    for column in ("rater", "items", "link"):
        table.add_column(column, overflow="fold")
    for link in links:
        table.add_row(link.name, str(link.assigned), link.link)
    return table


def _status_table(status: StudyStatus) -> Table:
    table = Table(title=f"{status.name} · {status.rubric} · {status.state} · {status.samples} samples")
    for column in ("rater", "assigned", "done", "skipped", "pending", "median s/item", "last active"):
        table.add_column(column, justify="right" if column not in ("rater", "last active") else "left")
    for r in status.raters:
        table.add_row(
            r.name,
            str(r.assigned),
            str(r.done),
            str(r.skipped),
            str(r.pending),
            f"{r.seconds_median:.0f}" if r.seconds_median is not None else "–",
            r.last_active.strftime("%Y-%m-%d %H:%M") if r.last_active else "–",
        )
    return table


@study_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The study's name (unique).")],
    samples: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSONL of samples, one a line.")],
    raters: Annotated[str, typer.Option(help="Comma-separated rater names, e.g. 张医生,李医生,王医生.")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    per_sample: Annotated[int, typer.Option(help="Raters per sample (2 or more).")] = 2,
    calibration: Annotated[
        bool, typer.Option("--calibration", help="Show the judges' scores after each submitted item.")
    ] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the assignment and of each rater's order.")] = 0,
    base_url: Annotated[
        str | None, typer.Option(help="Where raters reach the service (default RJ_STUDY_PUBLIC_URL or localhost).")
    ] = None,
) -> None:
    """Create a study: each sample gets PER_SAMPLE raters and every pair of raters shares samples."""
    from judge.studies import service
    from judge.studies.schemas import StudySpec
    from rubrics.registry import RubricRegistry

    try:
        sample_list = read_samples(samples)
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    try:
        request = StudySpec.model_validate(
            {
                "name": name,
                "rubric": rubric,
                "raters": [r.strip() for r in raters.split(",") if r.strip()],
                "per_sample": per_sample,
                "calibration": calibration,
                "seed": seed,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        err_console.print(f"[red]ValidationError ({where}):[/red] {first.get('msg')}")
        raise typer.Exit(code=2) from exc

    async def work(settings: Settings, session: AsyncSession) -> StudyCreated:
        rubric_obj = RubricRegistry(user_dir=settings.rubrics_dir).resolve(rubric)
        url = base_url or settings.study_public_url or LOCAL_URL
        return await service.create_study(session, rubric_obj, request, sample_list, base_url=url)

    created = _run(work)
    console.print(
        f"study [bold]{created.name}[/bold]: {created.samples} samples × {created.per_sample} raters, "
        f"rubric {created.rubric}; every pair of raters shares {created.min_shared}–{created.max_shared} samples"
        + (f"; {created.duplicates} duplicate samples left out" if created.duplicates else "")
    )
    console.print(_links_table(created.raters))


@study_app.command("status")
def status(name: Annotated[str, typer.Argument(help="The study's name.")]) -> None:
    """Progress per rater: done, skipped, pending, median seconds per item."""
    from judge.studies import service

    async def work(settings: Settings, session: AsyncSession) -> StudyStatus:
        return await service.study_status(session, name)

    result = _run(work)
    console.print(_status_table(result))
    console.print(
        f"total: {result.done}/{result.assigned} rated, {result.skipped} skipped · live report: "
        f"{get_settings().study_public_url or LOCAL_URL}/v1/studies/{name}/report · "
        "lost link: rubric-judge study link NAME RATER"
    )


@study_app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="The study's name.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="JSONL, one assignment a line.")],
) -> None:
    """Every assignment with its scores, comments, skip reason, seconds spent and times, as JSONL."""
    from judge.studies import service
    from judge.studies.schemas import ItemRecord

    async def work(settings: Settings, session: AsyncSession) -> list[ItemRecord]:
        return await service.export_items(session, name)

    records = _run(work)
    with out.open("wb") as fh:
        for record in records:
            fh.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
    console.print(f"{len(records)} assignments of {name} -> {out}")


@study_app.command("close")
def close(name: Annotated[str, typer.Argument(help="The study's name.")]) -> None:
    """Close the study: its ratings stay, no rater can add or correct any."""
    from judge.studies import service

    async def work(settings: Settings, session: AsyncSession) -> StudyStatus:
        return await service.close_study(session, name)

    console.print(_status_table(_run(work)))


@study_app.command("link")
def link(
    name: Annotated[str, typer.Argument(help="The study's name.")],
    rater: Annotated[str, typer.Argument(help="The rater's name, e.g. 张医生.")],
    base_url: Annotated[str | None, typer.Option(help="Where raters reach the service.")] = None,
) -> None:
    """A new personal link for a rater who lost theirs (the old link stops working)."""
    from judge.studies import service

    async def work(settings: Settings, session: AsyncSession) -> RaterLink:
        url = base_url or settings.study_public_url or LOCAL_URL
        return await service.renew_link(session, name, rater, base_url=url)

    console.print(_links_table([_run(work)]))


@study_app.command("list")
def list_studies() -> None:
    """Every study with its progress."""
    from judge.studies import service
    from judge.studies.repository import StudyRepository

    async def work(settings: Settings, session: AsyncSession) -> list[StudyStatus]:
        studies = await StudyRepository(session).list_studies()
        return [await service.study_status(session, s.name) for s in studies]

    table = Table()
    for column in ("study", "rubric", "state", "samples", "rated", "skipped", "assigned"):
        table.add_column(column)
    for s in _run(work):
        table.add_row(s.name, s.rubric, s.state, str(s.samples), str(s.done), str(s.skipped), str(s.assigned))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
