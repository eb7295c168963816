"""The ``rubric-judge`` command line: everything the API can do, from a terminal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from judge import event_loop, heap
from judge.cli.agreement import register as register_agreement_commands
from judge.cli.errors import ReportingGroup, fail, set_debug
from judge.cli.jobs import register as register_job_commands
from judge.cli.judges import register as register_judge_commands
from judge.cli.rewards import register as register_reward_commands
from judge.cli.rm import register as register_rm_commands
from judge.cli.simulate import register as register_simulate_commands
from judge.cli.spool import register as register_spool_commands
from judge.cli.storage import register as register_storage_commands
from judge.cli.study import register as register_study_commands
from judge.errors import RubricJudgeError
from judge.settings import Settings, get_settings

# ReportingGroup: every command fails with one line and a hint (the traceback with --debug), never a traceback.
app = typer.Typer(help="Score medical CoT and responses on rubric axes.", no_args_is_help=True, cls=ReportingGroup)
rubrics_app = typer.Typer(help="List, show and validate rubrics.", no_args_is_help=True)
app.add_typer(rubrics_app, name="rubrics")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Print tracebacks instead of one-line errors.")] = False,
    judges_file: Annotated[
        Path | None,
        typer.Option("--judges-file", exists=True, dir_okay=False, help="Judge profiles YAML (sets RJ_JUDGES_FILE)."),
    ] = None,
) -> None:
    """Options that apply to every command."""
    import os

    set_debug(debug)
    if judges_file is not None:
        os.environ["RJ_JUDGES_FILE"] = str(judges_file.resolve())
        get_settings.cache_clear()


def _fail(exc: RubricJudgeError) -> typer.Exit:
    return fail(exc)  # one line and a hint (judge.cli.errors)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each is a stateless API replica).")] = 1,
    migrate_first: Annotated[
        bool, typer.Option("--migrate", help="Create or upgrade the database schema first, if it needs it.")
    ] = False,
) -> None:
    """Run the HTTP API with uvicorn (refuses a database without the current schema unless --migrate)."""
    import uvicorn

    from judge.logs import configure_logging, uvicorn_log_config

    settings = get_settings()
    # A bad judges file (unreadable, over the YAML limits, invalid) refuses to start with one line here,
    # not a traceback from inside uvicorn's lifespan.
    from judge.profiles import ProfileRegistry

    try:
        ProfileRegistry.from_file(settings.judges_file)
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    problem = _schema_problem(settings.database_url)
    if problem is not None:
        if not migrate_first:
            raise _fail(RubricJudgeError(f"{problem} (or start with `serve --migrate`)", field="database_url"))
        from judge.store.migrate import upgrade_sync

        upgrade_sync(settings.database_url, "head")
        err_console.print(f"migrated {_redact(settings.database_url)} to the current schema")
    configure_logging(settings)
    uvicorn.run(
        "api.main:app",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(settings),
    )


def _schema_problem(url: str) -> str | None:
    """What is wrong with the database's schema, or None (also when it cannot be reached: it may come back)."""
    from judge.store.database import create_engine
    from judge.store.schema import schema_state

    async def check() -> str | None:
        engine = create_engine(url, timeout_s=get_settings().db_timeout_s)  # a silent database must not hang serve
        try:
            return (await schema_state(engine)).problem
        except (OSError, TimeoutError) as exc:
            err_console.print(
                f"[yellow]warning:[/yellow] cannot connect to the database yet ({exc.__class__.__name__})"
            )
            return None
        finally:
            await engine.dispose()

    return asyncio.run(check())


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create or upgrade the database schema (Alembic)."""
    from judge.store.migrate import upgrade_sync

    settings = get_settings()
    upgrade_sync(settings.database_url, revision)
    console.print(f"database at revision {revision}: {_redact(settings.database_url)}", soft_wrap=True)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def score(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input JSONL, one sample a line.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output JSONL (appended to; a rerun resumes).")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    judge: Annotated[
        str | None,
        typer.Option(help="Judge profile name (default: RJ_DEFAULT_JUDGE, else the one fit for the rubric)."),
    ] = None,
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
            heap.settle()  # start-up done: freeze what lives as long as the process
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
        from judge.cli.jobs import print_summary
        from judge.pricing.prices import cost as cost_of
        from judge.score_file import summarise_score_files

        if stats.skipped:
            console.print(f"resumed: {stats.skipped} lines were already done")
        console.print(f"{rubric_obj.ref} · judge {profile.name} · {stats.scored} scored, {stats.cached} from the cache")
        # The same summary as `filter` (passed = kept, failed = dropped, unscored = failed), over the whole output.
        summary = summarise_score_files(out, errors_path)
        print_summary("filter", summary, cost=cost_of(profile.prices, summary.usage))
        from judge.jsonl import first_bad_lines

        for line in first_bad_lines(errors_path):
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)
        console.print(f"results: {out}" + (f"  bad lines: {errors_path}" if stats.invalid else ""), soft_wrap=True)

    try:
        event_loop.run(main(get_settings()))
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
def rubrics_show(
    ref: Annotated[str, typer.Argument(help="name or name@version")],
    as_yaml: Annotated[bool, typer.Option("--yaml", help="The whole rubric as YAML (anchors included).")] = False,
) -> None:
    """A rubric's axes, pass and reward policy in brief (``--yaml``: all of it)."""
    from rubrics.loader import dump_yaml
    from rubrics.registry import RubricRegistry

    try:
        rubric = RubricRegistry(user_dir=get_settings().rubrics_dir).resolve(ref)
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    if as_yaml:
        typer.echo(dump_yaml(rubric))
        return
    console.print(
        f"[bold]{rubric.ref}[/bold] · kind {rubric.kind} · language {rubric.language} · {len(rubric.axes)} axes"
        f" · hash {rubric.content_hash[:12]}",
        highlight=False,
    )
    table = Table(show_header=True, box=None, pad_edge=False)
    for column in ("layer", "axis", "title", "weight"):
        table.add_column(column, justify="right" if column == "weight" else "left", overflow="fold")
    for axis in rubric.axes:
        table.add_row(axis.layer, axis.key, axis.title.get(rubric.language), f"{axis.weight:g}")
    console.print(table)
    console.print(
        f"passes when every axis scores above {rubric.pass_policy.threshold:g}; `--yaml` prints anchors and policy"
    )


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
register_judge_commands(app)  # judges list, check
