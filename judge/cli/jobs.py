"""CLI commands of bulk jobs: ``filter`` and ``curate`` (local, or ``--server``), and ``worker``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from judge import event_loop, heap
from judge.cli.errors import fail
from judge.errors import RubricJudgeError
from judge.jobs.schemas import JobKind, JobOptions, JobSpec
from judge.jobs.summary import Summary
from judge.pricing.prices import cost as cost_of
from judge.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True)

_BARS = " ▁▂▃▄▅▆▇█"
# What some calls cost at a profile's prices (judge.pricing.prices.cost), None when unpriced.
Cost = dict[str, Any] | None

ServerOpt = Annotated[
    str | None, typer.Option("--server", envvar="RJ_SERVER", help="Run on a rubric-judge server (URL) and its workers.")
]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="RJ_API_KEY", help="Bearer key for --server.")]
KeptOpt = Annotated[Path, typer.Option("--kept", help="Kept records (JSONL); appended to, a rerun resumes.")]
DroppedOpt = Annotated[
    Path, typer.Option("--dropped", help="Dropped, failed and invalid records (JSONL), each with its outcome.")
]
SourceArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input JSONL, one item a line.")]


def register(app: typer.Typer) -> None:
    """Add the job commands to the ``rubric-judge`` app."""
    app.command("filter")(filter_command)
    app.command("curate")(curate_command)
    app.command("worker")(worker_command)


def _fail(exc: RubricJudgeError) -> typer.Exit:
    return fail(exc)  # one line and a hint (judge.cli.errors)


@dataclass(frozen=True)
class _Run:
    spec: JobSpec
    source: Path
    kept: Path
    dropped: Path
    server: str | None
    api_key: str | None
    window: int


def filter_command(
    source: SourceArg,
    kept: KeptOpt,
    dropped: DroppedOpt,
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    judge: Annotated[str, typer.Option(help="Judge profile name.")] = "rules",
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=10_000, help="Samples per batch (server: per chunk).")] = 256,
    window: Annotated[int, typer.Option(min=1, help="Local runs: batches scored at once.")] = 4,
    no_rationale: Annotated[bool, typer.Option("--no-rationale", help="Leave rationales out.")] = False,
    rationale: Annotated[
        str | None, typer.Option(help="Ask the judge for full | brief | none (scores only; cheapest) rationales.")
    ] = None,
    on_missing: Annotated[
        str, typer.Option(help="An unscored axis: null (item failed), fail (dropped), ignore.")
    ] = "null",
) -> None:
    """Keep the samples whose every rubric axis passes; the rest go to --dropped. Resumable."""
    judged = rationale if rationale is not None else not no_rationale
    options = _options(chunk_size=chunk_size, rationale=judged, on_missing=on_missing)
    spec = JobSpec(kind="filter", rubric=rubric, judge=judge, options=options)
    _main(_Run(spec, source, kept, dropped, server, api_key, window))


def curate_command(
    source: SourceArg,
    kept: KeptOpt,
    dropped: DroppedOpt,
    generator: Annotated[str, typer.Option(help="Generator profile (an openai profile of the judges file).")],
    judge: Annotated[str, typer.Option(help="Judge profile name.")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    rounds: Annotated[int, typer.Option(min=1, max=10, help="Drafts per conversation: 1 + refinements.")] = 3,
    language: Annotated[str | None, typer.Option(help="Generator prompts: zh or en (default: the rubric's).")] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=10_000, help="Conversations per batch (server: chunk).")] = 64,
    window: Annotated[int, typer.Option(min=1, help="Local runs: batches worked on at once.")] = 4,
) -> None:
    """Generate -> judge -> refine with feedback, up to --rounds drafts; kept records are ready for SFT."""
    options = _options(chunk_size=chunk_size, rounds=rounds, language=language)
    spec = JobSpec(kind="curate", rubric=rubric, judge=judge, generator=generator, options=options)
    _main(_Run(spec, source, kept, dropped, server, api_key, window))


def worker_command(
    max_chunks: Annotated[int, typer.Option(min=1, help="Chunks worked on at once.")] = 4,
    lease_s: Annotated[
        float | None, typer.Option(min=0.5, help="Lease without heartbeat (default RJ_JOB_LEASE_S).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name in leases (default host:pid:random).")] = None,
) -> None:
    """Serve the job queue (Redis) on the shared PostgreSQL store; run as many as wanted, anywhere."""
    from judge.jobs.worker import WorkerConfig, run_worker

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.redis_url:
        raise _fail(RubricJudgeError("a worker needs the job queue: set RJ_REDIS_URL", field="redis_url"))
    if not settings.database_url.startswith("postgresql"):
        raise _fail(RubricJudgeError("workers share PostgreSQL: set RJ_DATABASE_URL", field="database_url"))
    config = WorkerConfig(lease_s=lease_s or settings.job_lease_s, max_chunks=max_chunks, name=name)
    try:
        run_worker(settings, config)
    except RubricJudgeError as exc:
        raise _fail(exc) from exc


def _options(**values: Any) -> JobOptions:
    try:
        return JobOptions.model_validate({k: v for k, v in values.items() if v is not None})
    except ValueError as exc:
        raise _fail(RubricJudgeError(str(exc).splitlines()[-1], field="options")) from exc


def _main(run: _Run) -> None:
    settings = get_settings()
    try:
        if run.server:
            event_loop.run(_on_server(run))
        else:
            event_loop.run(_local(run, settings))
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    except KeyboardInterrupt:
        where = "the job goes on on the server; " if run.server else ""
        err_console.print(f"[yellow]interrupted[/yellow]: {where}run the same command again to continue")
        raise typer.Exit(code=130) from None


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
    )


async def _local(run: _Run, settings: Settings) -> None:
    from judge.jobs.generator import Generator
    from judge.jobs.local import run_local, summarise_files
    from judge.jobs.process import JobPlan
    from judge.jobs.service import JobsService
    from judge.resume import count_lines
    from judge.runtime import Runtime

    async with await Runtime.open(settings) as runtime:
        heap.settle()  # start-up done: freeze what lives as long as the process
        rubric, profile, generator_profile = JobsService(runtime).check_spec(run.spec)
        generator = Generator(generator_profile) if generator_profile is not None else None
        generator_prices = generator_profile.prices if generator_profile is not None else None
        plan = JobPlan(
            kind=run.spec.kind,
            rubric=rubric,
            profile=profile,
            options=run.spec.options,
            generator=generator,
            scope=str(run.source.resolve()),
        )
        total = count_lines(run.source)
        try:
            with _progress(run.spec.kind) as progress:
                task = progress.add_task(run.spec.kind, total=total, rate="")

                def advance(n: int) -> None:
                    progress.advance(task, n)
                    speed = progress.tasks[0].speed
                    progress.update(task, rate=f"{speed:.1f}/s" if speed else "")

                result = await run_local(
                    runtime, plan, run.source, run.kept, run.dropped,
                    batch_size=run.spec.options.chunk_size, window=run.window, on_progress=advance,
                )  # fmt: skip
                progress.update(task, completed=result.resumed + result.processed)
        finally:
            if generator is not None:
                await generator.aclose()
    if result.resumed:
        console.print(f"resumed: {result.resumed} lines were already done")
    summary = summarise_files([run.kept, run.dropped])
    costs = (cost_of(profile.prices, summary.usage), cost_of(generator_prices, summary.generator_usage))
    _report(run.spec.kind, summary, run, costs)


# --- server mode ------------------------------------------------------------------------------------------------


def _state_path(run: _Run) -> Path:
    return run.kept.with_name(run.kept.name + ".job.json")


def _fingerprint(run: _Run) -> dict[str, Any]:
    stat = run.source.stat()
    return {
        "server": run.server,
        "source": str(run.source.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "spec": run.spec.model_dump(mode="json"),
    }


async def _on_server(run: _Run) -> None:
    from judge.jobs.client import JobsClient, ServerError

    assert run.server is not None
    client = JobsClient(run.server, run.api_key)
    state_path = _state_path(run)
    fingerprint = _fingerprint(run)
    try:
        job: dict[str, Any] | None = None
        if state_path.exists():
            saved = orjson.loads(state_path.read_bytes())
            if {k: saved.get(k) for k in fingerprint} == fingerprint:
                try:
                    job = await client.get(str(saved["job_id"]))
                except ServerError as exc:
                    if exc.status_code != 404:
                        raise
                if job is not None and job["state"] in ("failed", "cancelled"):
                    job = None
                if job is not None:
                    console.print(f"following job {job['id']} ({job['state']})")
        if job is None:
            size = run.source.stat().st_size
            with Progress(
                TextColumn("[bold]uploading"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=err_console
            ) as progress:
                upload = progress.add_task("upload", total=size)
                job = await client.create(run.spec, run.source, on_bytes=lambda n: progress.advance(upload, n))
            state_path.write_bytes(orjson.dumps({**fingerprint, "job_id": job["id"]}))
            console.print(f"job {job['id']} created")
        job = await _follow(client, job, run.spec.kind)
        kept_n = await client.download(job["id"], kept=True, dest=run.kept)
        dropped_n = await client.download(job["id"], kept=False, dest=run.dropped)
    finally:
        await client.aclose()
    console.print(f"downloaded {kept_n} kept and {dropped_n} other records")
    if job["state"] != "done":
        err_console.print(f"[red]job {job['state']}[/red]: {job.get('error') or ''}")
    summary = job.get("summary") or {}
    _report(run.spec.kind, Summary.from_json(summary), run, (summary.get("cost"), summary.get("generator_cost")))
    if job["state"] == "failed":
        raise typer.Exit(code=1)


async def _follow(client: Any, job: dict[str, Any], kind: JobKind) -> dict[str, Any]:
    with _progress(kind) as progress:
        task = progress.add_task(kind, total=max(1, job["counts"]["total"]), rate="")
        while True:
            counts = job["counts"]
            rate = f"{job['rate']:.1f}/s" if job.get("rate") else ""
            progress.update(task, total=max(1, counts["total"]), completed=counts["done"], rate=rate)
            if job["state"] not in ("ingesting", "running"):
                return job
            await asyncio.sleep(1.0)
            job = await client.get(job["id"])


# --- summary ----------------------------------------------------------------------------------------------------


def _histogram(counts: dict[str, int]) -> str:
    top = max(counts.values(), default=0)
    if not top:
        return ""
    return "".join(_BARS[round(counts.get(level, 0) / top * (len(_BARS) - 1))] for level in ("1", "2", "3", "4", "5"))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _report(kind: Literal["filter", "curate"], summary: Summary, run: _Run, costs: tuple[Cost, Cost]) -> None:
    from judge.jsonl import first_bad_lines

    print_summary(kind, summary, cost=costs[0], generator_cost=costs[1])
    if summary.outcomes.get("invalid"):
        for line in first_bad_lines(run.dropped):
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"kept: {run.kept}  dropped/failed/invalid: {run.dropped}", soft_wrap=True)


def print_summary(
    kind: Literal["filter", "curate"], summary: Summary, *, cost: Cost = None, generator_cost: Cost = None
) -> None:
    """Pass rate, per-axis table with histograms, most failing axes (and curation rounds), what the judge calls
    took in tokens (and cost, at the profile's prices); `score` ends with it too."""
    out = summary.outcomes
    console.print(
        f"[bold]pass rate {_pct(summary.pass_rate)}[/bold]: kept {out.get('kept', 0)}, dropped {out.get('dropped', 0)}"
        f", failed {out.get('failed', 0)}, invalid {out.get('invalid', 0)}"
    )
    if summary.axes:
        table = Table(title="per axis (final verdicts)")
        for column in ("axis", "scored", "pass rate", "1", "2", "3", "4", "5", "histogram", "unscored"):
            table.add_column(column, justify="left" if column in ("axis", "histogram") else "right")
        for key, stats in summary.axes.items():
            levels = [str(stats.histogram.get(level, 0)) for level in ("1", "2", "3", "4", "5")]
            table.add_row(
                key, str(stats.scored), _pct(stats.pass_rate), *levels, _histogram(stats.histogram), str(stats.unscored)
            )
        console.print(table)
    if summary.failing:
        top = ", ".join(f"{key} ({n})" for key, n in summary.most_failing(5))
        console.print(f"most common failing axes: {top}")
    if kind == "curate" and summary.rounds:
        table = Table(title="curation rounds")
        for column in ("round", "judged", "passed", "pass rate", "kept so far"):
            table.add_column(column, justify="right")
        kept_so_far = 0
        for round_no, step in sorted(summary.rounds.items(), key=lambda kv: int(kv[0])):
            kept_so_far += step.passed
            rate = step.passed / step.judged if step.judged else None
            table.add_row(round_no, str(step.judged), str(step.passed), _pct(rate), str(kept_so_far))
        console.print(table)
    for who, usage, spent in (("judge", summary.usage, cost), ("generator", summary.generator_usage, generator_cost)):
        if usage.get("calls"):
            console.print(_usage_line(who, usage, spent))


def _usage_line(who: str, usage: dict[str, int], spent: Cost) -> str:
    """``judge: 1,024 calls, 5,187,000 prompt tokens (4,460,000 cached), 841,000 completion; 1.2345 USD``."""
    line = (
        f"{who}: {usage.get('calls', 0):,} calls, {usage.get('prompt_tokens', 0):,} prompt tokens "
        f"({usage.get('cached_tokens', 0):,} cached), {usage.get('completion_tokens', 0):,} completion"
    )
    if spent is not None:
        line += f"; {spent['amount']:.4f} {spent['currency']}"
        if spent.get("unpriced_calls"):
            line += f" (+ {spent['unpriced_calls']} hedge calls whose tokens are unknown)"
    return line
