"""CLI commands of agreement studies: ``ratings import``, ``agreement``, ``stability``, ``positions``.

Registered on the main ``rubric-judge`` app by :func:`register`; the statistics are imported by the commands
that need them, so the CLI starts as fast as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table

from judge.cli.errors import fail
from judge.errors import RubricJudgeError
from judge.settings import get_settings

if TYPE_CHECKING:
    from pydantic import BaseModel

    from judge.agreement.ratings import RatingIssue, RatingsFormat
    from judge.agreement.report import AgreementReport
    from judge.agreement.stability import PositionReport, StabilityReport

ratings_app = typer.Typer(
    help="Import ratings (human raters, other judges) for agreement studies.", no_args_is_help=True
)
console = Console()
_T = TypeVar("_T")
err_console = Console(stderr=True)


def _fail(exc: RubricJudgeError) -> typer.Exit:
    return fail(exc)  # one line and a hint (judge.cli.errors)


def _run(main: Coroutine[Any, Any, _T]) -> _T:
    """Run a command's coroutine; a domain error ends the command with the CLI's one-line failure."""
    try:
        return asyncio.run(main)
    except RubricJudgeError as exc:
        raise _fail(exc) from exc


def _write_json(report: BaseModel, out: Path | None) -> None:
    """Write ``report`` as indented JSON to ``out``, if asked for."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.model_dump_json(indent=2), encoding="utf-8")


def _issues_table(title: str, issues: list[RatingIssue]) -> Table:
    table = Table(title=title)
    table.add_column("line", justify="right")
    table.add_column("field")
    table.add_column("problem")
    for issue in issues:
        table.add_row(str(issue.line), issue.field or "", issue.message)
    return table


@ratings_app.command("import")
def ratings_import(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Ratings: .csv, .tsv or .jsonl.")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    samples: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="JSONL of the rated samples (score input, or score output with sample_hash) to resolve sample_id.",
        ),
    ] = None,
    format: Annotated[str | None, typer.Option(help="csv, tsv or jsonl (default: from the file name).")] = None,
) -> None:
    """Validate ratings against the rubric and store the good rows; bad rows are listed (exit code 1)."""
    from judge.agreement.studies import import_file, read_sample_index

    if format is not None and format not in ("csv", "tsv", "jsonl"):
        raise typer.BadParameter("use csv, tsv or jsonl", param_hint="--format")
    fmt = cast("RatingsFormat | None", format)

    async def main() -> int:
        from judge.runtime import Runtime

        index = read_sample_index(samples) if samples is not None else None
        async with await Runtime.open(get_settings()) as runtime:
            rubric_obj = runtime.rubrics.resolve(rubric)
            outcome = await import_file(runtime.sessions, rubric_obj, source, samples=index, format=fmt)
        if index is not None and index.issues:
            console.print(_issues_table(f"unusable lines in {samples}", index.issues))
        console.print(f"{rubric_obj.ref}: accepted {outcome.accepted} ratings from {source}")
        for rater, count in outcome.raters.items():
            console.print(f"  {rater}: {count}")
        if outcome.errors:
            console.print(_issues_table(f"{len(outcome.errors)} bad rows in {source}", outcome.errors))
            return 1
        return 0

    code = _run(main())
    raise typer.Exit(code=code)


@ratings_app.command("raters")
def ratings_raters(
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
) -> None:
    """The raters with ratings under a rubric."""
    from judge.store.ratings_repository import RatingRepository

    async def main() -> list[str]:
        from judge.runtime import Runtime

        async with await Runtime.open(get_settings()) as runtime:
            rubric_obj = runtime.rubrics.resolve(rubric)
            async with runtime.sessions() as session:
                return await RatingRepository(session).raters(rubric_obj.content_hash)

    for rater in _run(main()):
        typer.echo(rater)


def agreement(
    out: Annotated[Path, typer.Option(help="Folder for agreement.json, the PNG figures and agreement.html.")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    raters: Annotated[str, typer.Option(help="Comma-separated rater names or globs: judge:a,judge:b,human:*")] = "*",
    n_boot: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for the CIs (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = 0,
) -> None:
    """Per-axis agreement of raters with bootstrap CIs: JSON, PNG figures and one HTML page; prints the table."""
    from judge.agreement.report import terminal_tables, write_report
    from judge.agreement.studies import agreement_from_store

    async def main() -> AgreementReport:
        from judge.runtime import Runtime

        async with await Runtime.open(get_settings()) as runtime:
            rubric_obj = runtime.rubrics.resolve(rubric)
            return await agreement_from_store(runtime.sessions, rubric_obj, raters, n_boot=n_boot, seed=seed)

    report = _run(main())
    files = write_report(report, out)
    for table in terminal_tables(report):  # in groups that fit 100 columns
        console.print(table)
    console.print(f"report: {files.html_path}  data: {files.json_path}  figures: {len(files.figures)} in {out}")


def _stability_table(report: StabilityReport) -> Table:
    runs = report.agreement
    table = Table(title=f"{report.rater} · {len(report.runs)} runs · n={report.n_samples} · self-agreement")
    for column in ("axis", "n", "α ord", "QWK", "exact", "mean SD", "unstable"):
        table.add_column(column, justify="left" if column == "axis" else "right")

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    for axis in report.axes:
        group = runs.group_axis(axis.axis)
        table.add_row(
            axis.axis,
            str(axis.n_samples),
            fmt(group.metrics["alpha_ordinal"].value),
            fmt(group.metrics["qwk"].value),
            fmt(group.metrics["exact"].value),
            fmt(axis.mean_sd),
            fmt(axis.unstable_share),
        )
    overall = runs.group_overall
    table.add_row(
        "overall",
        str(report.n_samples),
        fmt(overall.metrics["alpha_ordinal"].value),
        fmt(overall.metrics["qwk"].value),
        fmt(overall.metrics["exact"].value),
        "",
        "",
        style="bold",
    )
    return table


def stability(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input JSONL, one sample a line.")],
    judge: Annotated[str, typer.Option(help="Judge profile name.")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    runs: Annotated[int, typer.Option(min=2, help="How many times to score the set.")] = 3,
    n_boot: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for the CIs.")] = 200,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the stability report here as JSON.")] = None,
) -> None:
    """Re-score a set RUNS times with the cache off, store each run as ratings, print the self-agreement."""
    from judge.agreement.studies import stability_study
    from judge.score_file import read_samples
    from judge.service import check_limits, resolve

    async def main() -> StabilityReport:
        from judge.runtime import Runtime
        from judge.samples import Sample, normalise

        async with await Runtime.open(get_settings()) as runtime:
            rubric_obj, profile = resolve(runtime, rubric, judge)
            samples: list[Sample] = []
            for number, sample_in, error in read_samples(source, set()):
                if sample_in is not None:
                    try:
                        check_limits(runtime.settings, [sample_in])
                    except RubricJudgeError as exc:
                        sample_in, error = None, f"{exc.field}: {exc.message}"
                if sample_in is None:
                    err_console.print(f"[yellow]line {number} skipped:[/yellow] {error}")
                    continue
                samples.append(normalise(sample_in))

            def done(run: int) -> None:
                err_console.print(f"run {run + 1}/{runs} scored")

            return await stability_study(
                runtime.scorer, runtime.sessions, rubric_obj, profile, samples, runs,
                n_boot=n_boot, seed=seed, on_run=done,
            )  # fmt: skip

    report = _run(main())
    console.print(_stability_table(report))
    flips = "–" if report.pass_flip_share is None else f"{report.pass_flip_share:.1%}"
    console.print(f"pass decision flips between runs on {flips} of {report.n_pass_samples} samples")
    console.print(f"stored runs {report.runs[0]}..{report.runs[-1]} as ratings by {report.rater}")
    _write_json(report, out)


def _positions_table(report: PositionReport) -> Table:
    positions = [p.position for p in report.overall.positions]
    table = Table(title=f"{report.n_groups} groups · score shift by display position ({report.ci_level:.0%} CI)")
    table.add_column("axis")
    for position in positions:
        table.add_column(f"#{position + 1}", justify="right")
    table.add_column("ρ shift", justify="right")
    table.add_column("p", justify="right")
    for effect in [*report.axes, report.overall]:
        cells = []
        by_position = {p.position: p for p in effect.positions}
        for position in positions:
            row = by_position.get(position)
            shift = row.shift if row is not None else None
            if shift is None or shift.value is None:
                cells.append("–")
            elif shift.low is None or shift.high is None:
                cells.append(f"{shift.value:+.2f}")
            else:
                cells.append(f"{shift.value:+.2f}\n[dim]{shift.low:+.2f}–{shift.high:+.2f}[/dim]")
        rho = "–" if effect.shift_spearman is None else f"{effect.shift_spearman:+.2f}"
        p = "–" if effect.shift_spearman_p is None else f"{effect.shift_spearman_p:.3g}"
        table.add_row(effect.axis, *cells, rho, p, style="bold" if effect is report.overall else None)
    return table


def positions(
    judge: Annotated[str, typer.Option(help="Judge profile name (a group-mode profile).")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    n_boot: Annotated[int, typer.Option(min=0, help="Bootstrap resamples (over groups) for the CIs.")] = 200,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the position report here as JSON.")] = None,
) -> None:
    """How a group-mode judge's scores move with a response's position in the group (stored verdicts)."""
    from judge.agreement.studies import positions_from_store

    async def main() -> PositionReport:
        from judge.runtime import Runtime

        async with await Runtime.open(get_settings()) as runtime:
            rubric_obj = runtime.rubrics.resolve(rubric)
            return await positions_from_store(runtime.sessions, rubric_obj, judge, n_boot=n_boot, seed=seed)

    report = _run(main())
    console.print(_positions_table(report))
    _write_json(report, out)


def register(app: typer.Typer) -> None:
    """Add the agreement commands to the ``rubric-judge`` app."""
    app.add_typer(ratings_app, name="ratings")
    app.command("agreement")(agreement)
    app.command("stability")(stability)
    app.command("positions")(positions)
