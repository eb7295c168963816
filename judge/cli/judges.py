"""CLI commands ``judges list`` and ``judges check NAME``: find the configured judges and try one for real."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from judge.settings import get_settings

console = Console()
judges_app = typer.Typer(help="List the configured judges; check that one answers.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``judges`` group to the ``rubric-judge`` app."""
    app.add_typer(judges_app, name="judges")


@judges_app.command("list")
def judges_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """The judge profiles this installation knows (RJ_JUDGES_FILE / --judges-file, plus the built-in rules judge)."""
    from judge.judges.catalog import catalog
    from judge.profiles import ProfileRegistry

    settings = get_settings()
    rows = catalog(ProfileRegistry.from_file(settings.judges_file))
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "backend", "rubric kinds", "model", "key", "output", "logprobs"):
        table.add_column(column, overflow="fold")
    for row in rows:
        key = (
            "-" if row["api_key_env"] is None else f"{row['api_key_env']} ({'set' if row['api_key_set'] else 'unset'})"
        )
        table.add_row(
            row["name"],
            row["backend"],
            ",".join(row["rubric_kinds"]),
            row["model"] or row["reward_model"] or "-",
            key,
            row["structured_output"] if row["backend"] == "openai" else "-",
            "yes" if row["logprobs"] and row["backend"] == "openai" else "-",
        )
    console.print(table)
    if settings.judges_file is None:
        console.print("only the built-in judge: point RJ_JUDGES_FILE (or --judges-file) at a judges YAML")


@judges_app.command("check")
def judges_check(
    name: Annotated[str, typer.Argument(help="Judge profile name.")],
    rubric: Annotated[
        str | None, typer.Option(help="Rubric to score under (default: prmed, or prmed-format for rules).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
) -> None:
    """Score one built-in Chinese sample with the judge: latency, structured output, logprobs. Exit 1 if it failed."""
    from judge.judges.check import check_judge
    from judge.profiles import ProfileRegistry
    from rubrics.registry import RubricRegistry

    settings = get_settings()
    profile = ProfileRegistry.from_file(settings.judges_file).get(name)
    if profile.backend == "reward_model":
        raise typer.BadParameter(
            "reward_model judges load from the registry: try `rubric-judge rm list`", param_hint="NAME"
        )
    ref = rubric or ("prmed-format" if profile.backend == "rules" else "prmed")
    rubric_obj = RubricRegistry(user_dir=settings.rubrics_dir).resolve(ref)
    report = asyncio.run(check_judge(profile, rubric_obj))
    if as_json:
        typer.echo(orjson.dumps(report.as_dict()).decode())
    else:
        mark = "[green]ok[/green]" if report.ok else "[red]failed[/red]"
        console.print(f"{mark} judge {report.judge} on {report.rubric}: {report.latency_ms:.0f} ms", highlight=False)
        console.print(f"  axes scored: {report.axes_ok}/{report.axes}  retries: {report.retries}", highlight=False)
        console.print(f"  structured output: {'works' if report.structured_output else 'failed'}", highlight=False)
        console.print(f"  logprobs: {report.logprobs}", highlight=False)
        if report.error:
            console.print(f"  error: {report.error}", highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(code=1)
