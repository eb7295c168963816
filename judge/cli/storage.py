"""CLI commands of retention and export: ``prune`` and ``export verdicts``.

Registered on the main ``rubric-judge`` app by :func:`register`. pyarrow is imported only by a Parquet export.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from judge.errors import RubricJudgeError
from judge.retention.errors import InvalidRetentionOption
from judge.retention.policy import PrunePolicy, parse_age
from judge.settings import get_settings

if TYPE_CHECKING:
    from judge.retention.service import PruneReport

export_app = typer.Typer(help="Move the record out of the database (to a warehouse or object store).")
console = Console()
err_console = Console(stderr=True)


def _fail(exc: RubricJudgeError) -> typer.Exit:
    where = f" ({exc.field})" if exc.field else ""
    err_console.print(f"[red]{exc.type}{where}:[/red] {exc.message}")
    return typer.Exit(code=2)


def human_bytes(value: float | None) -> str:
    if value is None:
        return "n/a (PostgreSQL only)"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TB"


def parse_when(text: str, *, field: str, now: datetime | None = None) -> datetime:
    """An ISO date or datetime (UTC unless it says otherwise), or an age such as ``30d`` (that long ago)."""
    now = now or datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_age(text, field=field)
        except InvalidRetentionOption:
            raise InvalidRetentionOption(
                f"{text!r} is neither a date (2026-11-01, 2026-11-01T08:00:00+08:00) nor an age (30d)", field=field
            ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def prune_table(report: PruneReport, policy: PrunePolicy) -> Table:
    verb = "would go" if report.dry_run else "deleted"
    table = Table(title=f"prune ({'dry run: nothing deleted' if report.dry_run else 'done'})")
    for column in ("what", "selected", "kept: job items", "kept: ratings", "kept: RM training", verb, "≈ bytes"):
        table.add_column(column, justify="right" if column != "what" else "left")
    labels = {
        "failed": f"failed verdicts older than {policy.failed_older_than}",
        "superseded": "superseded verdicts",
    }
    per_verdict = report.bytes_by_table.get("verdicts")
    removable = report.verdicts or 1
    for rule, count in report.rules.items():
        gone = report.deleted.get(rule, count.removable) if not report.dry_run else count.removable
        share = per_verdict * count.removable / removable if per_verdict is not None else None
        table.add_row(
            labels[rule], f"{count.selected:,}", f"{count.by_jobs:,}", f"{count.by_ratings:,}",
            f"{count.by_training_sets:,}", f"{gone:,}", human_bytes(share) if count.removable else "0",
        )  # fmt: skip
    if policy.jobs_finished_older_than is not None:
        jobs = report.jobs
        job_bytes = [
            report.bytes_by_table.get(t) for t in ("jobs", "job_items", "job_chunks") if t in report.bytes_by_table
        ]
        size = None if any(b is None for b in job_bytes) else sum(b or 0.0 for b in job_bytes)
        gone = report.deleted.get("jobs", jobs.jobs) if not report.dry_run else jobs.jobs
        what = f"jobs finished more than {policy.jobs_finished_older_than} ago"
        table.add_row(
            f"{what} ({jobs.items:,} items, {jobs.chunks:,} chunks)",
            f"{jobs.jobs:,}", "", "", "", f"{gone:,}", human_bytes(size) if jobs.jobs else "0",
        )  # fmt: skip
    table.add_row("total", "", "", "", "", "", human_bytes(report.bytes_freed), end_section=True)
    return table


def prune(
    failed_older_than: Annotated[
        str | None, typer.Option(help="Delete failed (incomplete) verdicts older than this age: 30d, 12h, 2w.")
    ] = None,
    superseded: Annotated[
        bool,
        typer.Option("--superseded", help="Delete verdicts that a newer complete verdict (same key, judge) replaced."),
    ] = False,
    jobs_finished_older_than: Annotated[
        str | None, typer.Option(help="Delete jobs (with their items) that finished longer ago than this age.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would go and the bytes freed; delete nothing.")
    ] = False,
) -> None:
    """Delete what a year-long run no longer needs. Never a verdict a kept job, a rating or a reward model's
    training set refers to, nor a judge's newest complete verdict on a sample."""
    from judge.retention.service import plan_prune
    from judge.retention.service import prune as run_prune
    from judge.store.database import create_engine, make_session_factory

    try:
        policy = PrunePolicy(
            now=datetime.now(UTC),
            failed_older_than=parse_age(failed_older_than, field="failed-older-than") if failed_older_than else None,
            superseded=superseded,
            jobs_finished_older_than=(
                parse_age(jobs_finished_older_than, field="jobs-finished-older-than")
                if jobs_finished_older_than
                else None
            ),
        )
        if policy.empty:
            raise InvalidRetentionOption(
                "nothing to prune: give --failed-older-than, --superseded or --jobs-finished-older-than",
                field="failed-older-than",
            )
    except RubricJudgeError as exc:
        raise _fail(exc) from exc

    async def main() -> PruneReport:
        engine = create_engine(get_settings().database_url)
        try:
            sessions = make_session_factory(engine)
            return await (plan_prune(sessions, policy) if dry_run else run_prune(sessions, policy))
        finally:
            await engine.dispose()

    report = asyncio.run(main())
    console.print(prune_table(report, policy))
    if report.training_sets:
        console.print(
            f"{report.training_sets} registered reward model(s) trained on stored verdicts: their data is kept"
        )
    if not report.dry_run and report.verdicts:
        console.print("freed space is reused by new rows; VACUUM (FULL) or pg_repack returns it to the disk")


@export_app.command("verdicts")
def export_verdicts(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (JSONL: standard output when not given).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Verdicts written at or after: 2026-11-01, or an age: 30d.")] = None,
    until: Annotated[str | None, typer.Option(help="Verdicts written before this date or age.")] = None,
    format: Annotated[str, typer.Option(help="jsonl or parquet (parquet needs the 'export' extra).")] = "jsonl",
    rubric: Annotated[str | None, typer.Option(help="Only this rubric: name (latest) or name@version.")] = None,
    judge: Annotated[str | None, typer.Option(help="Only this judge profile.")] = None,
    with_samples: Annotated[bool, typer.Option("--with-samples", help="Add each verdict's sample content.")] = False,
    batch: Annotated[int, typer.Option(min=100, help="Rows per fetch (and per Parquet row group).")] = 5000,
) -> None:
    """Stream verdicts out as JSONL or Parquet, in constant memory."""
    from judge.retention.export import FORMATS, ExportFilter
    from judge.retention.export import export_verdicts as run_export

    try:
        if format not in FORMATS:
            raise InvalidRetentionOption(f"unknown format {format!r}: use jsonl or parquet", field="format")
        if format == "parquet":
            from judge.retention.export import require_parquet

            require_parquet()
        now = datetime.now(UTC)
        since_at = parse_when(since, field="since", now=now) if since else None
        until_at = parse_when(until, field="until", now=now) if until else None
    except RubricJudgeError as exc:
        raise _fail(exc) from exc

    async def main() -> int:
        from judge.runtime import Runtime

        async with await Runtime.open(get_settings()) as runtime:
            rubric_hash = runtime.rubrics.resolve(rubric).content_hash if rubric else None
            where = ExportFilter(since_at, until_at, rubric_hash, judge, with_samples)
            stdout = sys.stdout.buffer if out is None else None
            result = await run_export(runtime.sessions, where, format=format, out=out, stdout=stdout, batch=batch)
            return result.rows

    try:
        rows = asyncio.run(main())
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    if out is not None:
        err_console.print(f"{rows:,} verdicts -> {out}")


def register(app: typer.Typer) -> None:
    """Add ``prune`` and ``export`` to the ``rubric-judge`` app."""
    app.command("prune")(prune)
    app.add_typer(export_app, name="export")
