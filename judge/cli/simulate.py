"""``rubric-judge simulate``, ``perturb`` and ``gradient``: the simulate–evaluate loop from a terminal.

``simulate`` runs offline episodes (policy -> simulator -> policy …, every policy turn judged in context);
``perturb`` rewrites formal patient messages at each intensity; ``gradient`` measures the perturbation
gradient (pass rate and axis means from formal to heavy) and writes JSON, PNG and HTML. All three go through
the same service as ``POST /v1/simulate`` and ``/v1/perturb`` and resume from their own output.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, get_args

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from judge.errors import InvalidSample, RubricJudgeError
from judge.settings import get_settings
from judge.simulator.schemas import INTENSITIES, PERTURBATION_TYPES, Intensity, PerturbationType

console = Console()
err_console = Console(stderr=True)

SourceArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Cases, one JSON object a line.")]


def register(app: typer.Typer) -> None:
    """Add ``simulate``, ``perturb`` and ``gradient`` to the ``rubric-judge`` app."""
    app.command("simulate")(simulate_command)
    app.command("perturb")(perturb_command)
    app.command("gradient")(gradient_command)


def _fail(exc: RubricJudgeError) -> typer.Exit:
    where = f" ({exc.field})" if exc.field else ""
    err_console.print(f"[red]{exc.type}{where}:[/red] {exc.message}")
    return typer.Exit(code=2)


def _levels(value: str) -> list[Intensity]:
    levels = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in levels if v not in INTENSITIES]
    if bad or not levels:
        raise InvalidSample(f"unknown level(s) {bad}; choose from {', '.join(INTENSITIES)}", field="levels")
    return [next(known for known in INTENSITIES if known == v) for v in levels]


def _types(value: str | None) -> list[PerturbationType]:
    types = [v.strip() for v in (value or "").split(",") if v.strip()]
    bad = [t for t in types if t not in PERTURBATION_TYPES]
    if bad:
        raise InvalidSample(
            f"unknown perturbation type(s) {bad}; choose from {', '.join(PERTURBATION_TYPES)}", field="types"
        )
    return [t for t in PERTURBATION_TYPES if t in types]


@asynccontextmanager
async def _service() -> AsyncIterator[Any]:
    from judge.runtime import Runtime
    from judge.simulator.service import SimulatorService

    async with await Runtime.open(get_settings()) as runtime:
        service = SimulatorService(runtime)
        try:
            yield service
        finally:
            await service.aclose()


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console,
    )  # fmt: skip


def _run(main: Callable[[], Any]) -> Any:
    try:
        return asyncio.run(main())
    except RubricJudgeError as exc:
        raise _fail(exc) from exc


def simulate_command(
    source: SourceArg,
    policy: Annotated[str, typer.Option(help="Policy profile (policies:, simulators: or an OpenAI judge).")],
    simulator: Annotated[str, typer.Option(help="Simulator profile (simulators: in the judges file).")],
    judge: Annotated[str, typer.Option(help="Judge profile that scores each policy turn.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Episodes JSONL (appended to; a rerun resumes).")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    turns: Annotated[int, typer.Option(min=1, max=50, help="Policy turns per episode at most.")] = 3,
    reward_policy: Annotated[str, typer.Option(help="Episode reward: mean | min | last | discounted.")] = "mean",
    gamma: Annotated[float, typer.Option(min=0.0, max=1.0, help="Discount for --reward-policy discounted.")] = 0.9,
    seed: Annotated[int | None, typer.Option(help="Seed for the simulator and policy calls.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Episodes run at once.")] = 4,
    errors: Annotated[Path | None, typer.Option(help="Invalid case lines (default OUT.errors.jsonl).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask the simulator and judge again.")] = False,
    no_rationale: Annotated[bool, typer.Option("--no-rationale", help="Leave judge rationales out.")] = False,
) -> None:
    """Offline episodes: policy -> simulator -> policy …, each policy turn judged in context; resumable."""
    from judge.simulator.episode_rewards import REWARD_POLICIES
    from judge.simulator.episodes import EpisodeConfig, simulate_file
    from judge.simulator.service import SimulatorService

    if reward_policy not in REWARD_POLICIES:
        raise _fail(InvalidSample(f"choose from {', '.join(REWARD_POLICIES)}", field="reward_policy"))
    errors_path = errors or out.with_name(out.name.removesuffix(".jsonl") + ".errors.jsonl")

    async def main() -> Any:
        from judge.resume import count_lines
        from judge.service import resolve

        async with _service() as service:
            assert isinstance(service, SimulatorService)
            rubric_obj, judge_profile = resolve(service.runtime, rubric, judge)
            config = EpisodeConfig(
                policy=service.profiles.policy(policy), simulator=service.profiles.simulator(simulator),
                rubric=rubric_obj, judge=judge_profile, turns=turns, reward_policy=reward_policy,
                gamma=gamma, seed=seed, cache=not no_cache, rationale=not no_rationale,
            )  # fmt: skip
            with _progress("episodes") as progress:
                task = progress.add_task("episodes", total=count_lines(source))
                return await simulate_file(
                    service, source, out, errors_path, config, concurrency=concurrency,
                    on_progress=lambda n: progress.advance(task, n),
                )  # fmt: skip

    stats = _run(main)
    table = Table(title=f"simulate · policy {policy} · simulator {simulator} · judge {judge}")
    for column in (
        "episodes",
        "turns",
        f"mean {reward_policy} reward",
        "end reasons",
        "invalid",
        "failed",
        "resumed past",
    ):
        table.add_column(column, justify="right")
    mean = sum(stats.rewards) / len(stats.rewards) if stats.rewards else None
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(stats.end_reasons.items()))
    table.add_row(
        str(stats.episodes), str(stats.turns), "–" if mean is None else f"{mean:.3f}", reasons,
        str(stats.invalid), str(stats.failed), str(stats.skipped),
    )  # fmt: skip
    console.print(table)
    for error in stats.errors[:10]:
        err_console.print(f"[yellow]{error}[/yellow]")
    console.print(f"episodes: {out}" + (f"  bad lines: {errors_path}" if stats.invalid else ""))
    if stats.failed:
        raise typer.Exit(code=1)


def perturb_command(
    simulator: Annotated[str, typer.Option(help="Simulator profile that writes the rewrites.")],
    source: Annotated[
        Path | None, typer.Argument(exists=True, dir_okay=False, help='JSONL: {"text", "id"?, "types"?, "language"?}.')
    ] = None,
    text: Annotated[str | None, typer.Option(help="One formal patient message (instead of a file).")] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Rewrites JSONL (with a file; a rerun resumes).")
    ] = None,
    levels: Annotated[str, typer.Option(help="Comma-separated: formal,mild,moderate,heavy.")] = ",".join(INTENSITIES),
    types: Annotated[
        str | None, typer.Option(help=f"Types to draw on (default all): {','.join(PERTURBATION_TYPES)}")
    ] = None,
    language: Annotated[str, typer.Option(help="zh | en")] = "zh",
    seed: Annotated[int | None, typer.Option(help="Seed for the rewrite calls.")] = None,
) -> None:
    """Rewrite formal patient messages at each intensity, keeping the clinical facts; each rewrite is labelled."""
    from judge.resume import done_lines
    from judge.simulator.schemas import PerturbRequest
    from judge.simulator.service import SimulatorService

    if (source is None) == (text is None):
        raise _fail(InvalidSample("give a JSONL file or --text, not both", field="source"))
    if source is not None and out is None:
        raise _fail(InvalidSample("a file needs -o/--out", field="out"))
    try:
        level_list, type_list = _levels(levels), _types(types)
        if language not in get_args(PerturbRequest.model_fields["language"].annotation):
            raise InvalidSample("choose zh or en", field="language")
    except RubricJudgeError as exc:
        raise _fail(exc) from exc

    def request(raw: dict[str, Any]) -> PerturbRequest:
        return PerturbRequest.model_validate(
            {
                "simulator": simulator,
                "levels": level_list,
                "types": type_list,
                "language": language,
                "seed": seed,
                **raw,
            }
        )

    async def one_text() -> dict[str, Any]:
        async with _service() as service:
            assert isinstance(service, SimulatorService)
            result: dict[str, Any] = await service.perturb_request(request({"text": text}))
            return result

    async def a_file() -> int:
        assert source is not None and out is not None
        skip = done_lines([out])
        written = 0
        async with _service() as service:
            assert isinstance(service, SimulatorService)
            with source.open("rb") as fh, out.open("ab") as out_fh:
                for number, raw in enumerate(fh, start=1):
                    if number in skip or not raw.strip():
                        continue
                    try:
                        line = orjson.loads(raw)
                        item = request({k: line[k] for k in ("text", "types", "language") if k in line})
                    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
                        out_fh.write(orjson.dumps({"line": number, "error": str(exc)[:500]}) + b"\n")
                        continue
                    body = await service.perturb_request(item)
                    record = {
                        "line": number,
                        "id": line.get("id"),
                        "original": body["original"],
                        "rewrites": body["rewrites"],
                    }
                    out_fh.write(orjson.dumps(record) + b"\n")
                    out_fh.flush()
                    written += 1
        return written

    if text is not None:
        body = _run(one_text)
        table = Table(title=f"perturb · {simulator}")
        for column in ("level", "types", "text"):
            table.add_column(column)
        for rewrite in body["rewrites"]:
            table.add_row(rewrite["level"], ",".join(rewrite["types"]), rewrite["text"])
        console.print(table)
        return
    written = _run(a_file)
    console.print(f"{written} messages rewritten: {out}")


def gradient_command(
    source: SourceArg,
    policy: Annotated[str, typer.Option(help="Policy profile being measured.")],
    judge: Annotated[str, typer.Option(help="Judge profile.")],
    simulator: Annotated[str, typer.Option(help="Simulator profile that perturbs the first messages.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (rows.jsonl, gradient.json/png/html).")],
    rubric: Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")] = "prmed",
    levels: Annotated[str, typer.Option(help="Comma-separated, baseline first.")] = ",".join(INTENSITIES),
    n_boot: Annotated[int, typer.Option(min=0, max=100_000, help="Bootstrap resamples for the CIs.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed for the calls and the bootstrap.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Cases run at once.")] = 4,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask the perturber and judge again.")] = False,
) -> None:
    """The perturbation gradient: pass rate and axis means per level with CIs, and the drop from formal."""
    from judge.resume import count_lines
    from judge.service import resolve
    from judge.simulator.gradient import GradientConfig, collect_gradient, read_rows
    from judge.simulator.gradient_report import compute_gradient, level_summary, write_gradient
    from judge.simulator.service import SimulatorService

    try:
        level_list = _levels(levels)
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    rows_path, errors_path = out / "rows.jsonl", out / "rows.errors.jsonl"
    out.mkdir(parents=True, exist_ok=True)

    async def main() -> Any:
        async with _service() as service:
            assert isinstance(service, SimulatorService)
            rubric_obj, judge_profile = resolve(service.runtime, rubric, judge)
            config = GradientConfig(
                policy=service.profiles.policy(policy), perturber=service.profiles.simulator(simulator),
                rubric=rubric_obj, judge=judge_profile, levels=level_list, seed=seed, cache=not no_cache,
            )  # fmt: skip
            with _progress("cases") as progress:
                task = progress.add_task("cases", total=count_lines(source))
                stats = await collect_gradient(
                    service, source, rows_path, errors_path, config, concurrency=concurrency,
                    on_progress=lambda n: progress.advance(task, n),
                )  # fmt: skip
            return stats, rubric_obj

    stats, rubric_obj = _run(main)
    for error in stats.errors[:10]:
        err_console.print(f"[yellow]{error}[/yellow]")
    rows = read_rows(rows_path)
    report = compute_gradient(
        rows, rubric_obj, level_list, judge=judge, policy=policy, perturber=simulator, n_boot=n_boot, seed=seed
    )
    files = write_gradient(report, out)
    table = Table(title=f"perturbation gradient · policy {policy} · {report.n_cases} cases")
    for column in ("level", "pass rate % [95% CI]", f"drop from {report.baseline} (points)", "McNemar p"):
        table.add_column(column, justify="right")
    for row in level_summary(report):
        table.add_row(*row)
    console.print(table)
    console.print(f"report: {files.html_path}  data: {files.json_path}  figure: {files.png_path}")
    if stats.failed:
        raise typer.Exit(code=1)
