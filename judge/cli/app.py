"""The ``rubric-judge`` command line: everything the API can do, from a terminal."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from judge.cli.agreement import register as register_agreement_commands
from judge.cli.jobs import register as register_job_commands
from judge.cli.rewards import register as register_reward_commands
from judge.cli.rm import register as register_rm_commands
from judge.cli.simulate import register as register_simulate_commands
from judge.cli.spool import register as register_spool_commands
from judge.cli.storage import register as register_storage_commands
from judge.cli.study import register as register_study_commands
from judge.errors import RubricJudgeError
from judge.settings import Settings, get_settings

app = typer.Typer(help="Score medical CoT and responses on rubric axes.", no_args_is_help=True)
rubrics_app = typer.Typer(help="List, show and validate rubrics.", no_args_is_help=True)
app.add_typer(rubrics_app, name="rubrics")
console = Console()
err_console = Console(stderr=True)


def _fail(exc: RubricJudgeError) -> typer.Exit:
    where = f" ({exc.field})" if exc.field else ""
    err_console.print(f"[red]{exc.type}{where}:[/red] {exc.message}")
    return typer.Exit(code=2)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each is a stateless API replica).")] = 1,
) -> None:
    """Run the HTTP API with uvicorn."""
    import uvicorn

    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    uvicorn.run("api.main:app", host=host, port=port, workers=workers, log_level=settings.log_level.lower())


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create or upgrade the database schema (Alembic)."""
    from judge.store.migrate import upgrade_sync

    settings = get_settings()
    upgrade_sync(settings.database_url, revision)
    console.print(f"database at revision {revision}: {_redact(settings.database_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def score(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input JSONL, one sample a line.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output JSONL (appended to; a rerun resumes).")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    judge: Annotated[str, typer.Option(help="Judge profile name.")] = "rules",
    errors: Annotated[Path | None, typer.Option(help="Bad lines go here (default OUT.errors.jsonl).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per scoring batch.")] = 256,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Judge again even if a verdict exists.")] = False,
    no_rationale: Annotated[bool, typer.Option("--no-rationale", help="Leave rationales out of the output.")] = False,
    rationale: Annotated[
        str | None, typer.Option(help="Ask the judge for full | brief | none (scores only) rationales.")
    ] = None,
) -> None:
    """Score a JSONL file through the same Scorer as the API (no HTTP); resumable."""
    from judge.resume import count_lines
    from judge.score_file import score_file
    from judge.service import ScoreOptions

    errors_path = errors or out.with_name(out.name.removesuffix(".jsonl") + ".errors.jsonl")
    if rationale is not None and rationale not in ("full", "brief", "none"):
        raise typer.BadParameter("full, brief or none", param_hint="--rationale")
    options = ScoreOptions.model_validate(
        {"cache": not no_cache, "rationale": rationale if rationale is not None else not no_rationale}
    )

    async def main(settings: Settings) -> None:
        from judge.runtime import Runtime
        from judge.service import resolve

        async with await Runtime.open(settings) as runtime:
            rubric_obj, profile = resolve(runtime, rubric, judge)
            total = count_lines(source)
            with Progress(
                TextColumn("[bold]scoring"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
            ) as progress:
                task = progress.add_task("score", total=total, rate="")

                def advance(n: int) -> None:
                    progress.advance(task, n)
                    speed = progress.tasks[0].speed
                    progress.update(task, rate=f"{speed:.1f}/s" if speed else "")

                stats = await score_file(
                    runtime, rubric_obj, profile, source, out, errors_path,
                    options=options, batch_size=batch_size, on_progress=advance,
                )  # fmt: skip
                progress.update(task, completed=total)
        table = Table(title=f"{rubric_obj.ref} · judge {profile.name}")
        for column in ("scored", "passed", "failed", "unscored", "cached", "invalid", "resumed past"):
            table.add_column(column, justify="right")
        table.add_row(
            *map(str, (stats.scored, stats.passed, stats.failed, stats.unscored, stats.cached, stats.invalid)),
            str(stats.skipped),
        )
        console.print(table)
        if stats.axis_failures:
            top = sorted(stats.axis_failures.items(), key=lambda kv: -kv[1])[:5]
            console.print("most common failing axes: " + ", ".join(f"{k} ({v})" for k, v in top))
        console.print(f"results: {out}" + (f"  bad lines: {errors_path}" if stats.invalid else ""))

    try:
        asyncio.run(main(get_settings()))
    except RubricJudgeError as exc:
        raise _fail(exc) from exc


@rubrics_app.command("list")
def rubrics_list() -> None:
    """The rubrics this installation knows (built-in and the user directory)."""
    from rubrics.registry import RubricRegistry

    registry = RubricRegistry(user_dir=get_settings().rubrics_dir)
    table = Table()
    for column in ("ref", "kind", "language", "axes", "hash"):
        table.add_column(column)
    for r in registry.list():
        table.add_row(r.ref, r.kind, r.language, str(len(r.axes)), r.content_hash[:12])
    console.print(table)


@rubrics_app.command("show")
def rubrics_show(ref: Annotated[str, typer.Argument(help="name or name@version")]) -> None:
    """Print a rubric as YAML."""
    from rubrics.loader import dump_yaml
    from rubrics.registry import RubricRegistry

    try:
        rubric = RubricRegistry(user_dir=get_settings().rubrics_dir).resolve(ref)
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    typer.echo(dump_yaml(rubric))


@rubrics_app.command("validate")
def rubrics_validate(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Check a rubric YAML file against the schema."""
    from rubrics.loader import load_rubric_file

    try:
        rubric = load_rubric_file(path)
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    console.print(f"[green]valid[/green]: {rubric.ref} ({len(rubric.axes)} axes, hash {rubric.content_hash[:12]})")


# After the commands above, so that help lists them first.
register_agreement_commands(app)  # ratings import, agreement, stability, positions
register_job_commands(app)  # filter, curate, worker
register_rm_commands(app)  # rm train, eval, list, activate
register_spool_commands(app)  # spool status, replay
register_reward_commands(app)  # rewards
register_study_commands(app)  # study create, status, export, close, link, list
register_simulate_commands(app)  # simulate, perturb, gradient
register_storage_commands(app)  # prune, export verdicts
