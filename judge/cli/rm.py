"""CLI commands of the local reward model: ``rm train``, ``rm eval``, ``rm list``, ``rm activate``.

Registered on the main ``rubric-judge`` app by :func:`register`. torch, transformers and peft are imported by
``train`` and ``eval`` only, so the rest of the CLI starts as fast as before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer
from rich.console import Console
from rich.table import Table

from judge.cli.errors import fail
from judge.errors import RubricJudgeError
from judge.settings import get_settings

if TYPE_CHECKING:
    from judge.runtime import Runtime
    from reward_model.data import LabelledRecord
    from rubrics.schema import Rubric

rm_app = typer.Typer(help="Train, evaluate and register local reward models.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

RubricOpt = Annotated[str, typer.Option(help="Rubric: name (latest) or name@version.")]
JudgesOpt = Annotated[
    list[str] | None,
    typer.Option("--from-judge", help="Label with this judge profile's stored complete verdicts (repeatable)."),
]
LabelsOpt = Annotated[
    Path | None,
    typer.Option("--labels", exists=True, dir_okay=False, help="Labels JSONL (human raters) instead of verdicts."),
]


def _fail(exc: RubricJudgeError) -> typer.Exit:
    return fail(exc)  # one line and a hint (judge.cli.errors)


async def _records(
    runtime: Runtime, rubric: Rubric, judges: list[str] | None, labels: Path | None
) -> list[LabelledRecord]:
    from judge.reward_models import records_from_verdicts
    from reward_model.data import records_from_jsonl

    if labels is not None:
        return records_from_jsonl(labels, rubric.axis_keys)
    return await records_from_verdicts(runtime.sessions, rubric, judges)


def _check_source(judges: list[str] | None, labels: Path | None) -> None:
    if not judges and labels is None:
        raise typer.BadParameter("give --from-judge NAME (one or more) or --labels FILE", param_hint="--from-judge")
    if judges and labels is not None:
        raise typer.BadParameter("--from-judge and --labels exclude each other", param_hint="--labels")


@rm_app.command("train")
def rm_train(
    base: Annotated[str, typer.Option(help="Base checkpoint: a local directory or a hub name.")],
    out: Annotated[Path, typer.Option(help="Directory to write the trained model to.")],
    rubric: RubricOpt = "prmed",
    from_judge: JudgesOpt = None,
    labels: LabelsOpt = None,
    name: Annotated[str | None, typer.Option(help="Registry name (default: rm-<rubric name>).")] = None,
    head: Annotated[str, typer.Option(help="ordinal or regression.")] = "ordinal",
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    max_length: Annotated[int, typer.Option(min=16, help="Input tokens kept (the start is cut).")] = 4096,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: the best available).")] = None,
    activate: Annotated[
        bool, typer.Option("--activate", help="Make it the active version (the first version always is).")
    ] = False,
) -> None:
    """Train on stored verdicts (or labels), evaluate on held-out prompts, save and register the model."""
    _check_source(from_judge, labels)
    if head not in ("ordinal", "regression"):
        raise typer.BadParameter("use ordinal or regression", param_hint="--head")

    async def main() -> None:
        from judge.runtime import Runtime
        from judge.store.reward_models_repository import RewardModelRepository
        from reward_model.config import ModelSettings, TrainSettings
        from reward_model.pipeline import train_from_records

        async with await Runtime.open(get_settings()) as runtime:
            rubric_obj = runtime.rubrics.resolve(rubric)
            records = await _records(runtime, rubric_obj, from_judge, labels)
            console.print(f"{rubric_obj.ref}: {len(records)} labelled records")
            model = ModelSettings(
                base_model=base, head=cast(Literal["ordinal", "regression"], head), max_length=max_length
            )
            train = TrainSettings(learning_rate=learning_rate, epochs=epochs, batch_size=batch_size)
            run = await asyncio.to_thread(
                lambda: train_from_records(
                    records,
                    out_dir=out,
                    rubric_ref=rubric_obj.ref,
                    rubric_hash=rubric_obj.content_hash,
                    axis_keys=rubric_obj.axis_keys,
                    model=model,
                    train=train,
                    thresholds={k: rubric_obj.pass_policy.threshold_for(k) for k in rubric_obj.axis_keys},
                    data_info={"judges": from_judge, "jsonl": str(labels) if labels is not None else None},
                    device=device,
                )
            )
            meta = run.metadata
            registry_name = name or f"rm-{rubric_obj.name}"
            config: dict[str, Any] = {
                "artifact_id": meta.artifact_id,
                "rubric_ref": meta.rubric_ref,
                "model": meta.model.model_dump(mode="json"),
                "train": train.model_dump(mode="json"),
                "data": meta.data,
            }
            async with runtime.sessions() as session:
                repo = RewardModelRepository(session)
                first = await repo.get_active(registry_name) is None
                record = await repo.register(
                    registry_name,
                    path=str(out.resolve()),
                    base_model=meta.base_model,
                    rubric_hash=meta.rubric_hash,
                    axis_keys=meta.axis_keys,
                    config=config,
                    metrics=meta.metrics,
                    active=activate or first,
                )
                await session.commit()
        console.print(f"steps {run.result.steps}, best validation loss {run.result.best_val_loss}; splits {run.splits}")
        if run.test_report is not None:
            console.print(run.test_report.table(), markup=False, highlight=False)
        else:
            console.print("no held-out test prompts: nothing to report")
        state = "active" if record.active else "inactive"
        console.print(f"registered {record.ref} ({state}) -> {record.path}")

    try:
        asyncio.run(main())
    except RubricJudgeError as exc:
        raise _fail(exc) from exc


@rm_app.command("eval")
def rm_eval(
    path: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A trained model directory.")],
    rubric: RubricOpt = "prmed",
    from_judge: JudgesOpt = None,
    labels: LabelsOpt = None,
    all_prompts: Annotated[
        bool, typer.Option("--all", help="Every labelled prompt, not only the model's held-out test prompts.")
    ] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: the best available).")] = None,
) -> None:
    """Agreement of a saved model with stored verdicts (or labels): QWK, Spearman, MAE, pass F1, calibration."""
    _check_source(from_judge, labels)

    async def main() -> str:
        from judge.runtime import Runtime
        from reward_model.pipeline import evaluate_artifact

        async with await Runtime.open(get_settings()) as runtime:
            rubric_obj = runtime.rubrics.resolve(rubric)
            records = await _records(runtime, rubric_obj, from_judge, labels)
        thresholds = {k: rubric_obj.pass_policy.threshold_for(k) for k in rubric_obj.axis_keys}
        report = await asyncio.to_thread(
            evaluate_artifact, path, records, thresholds, test_split_only=not all_prompts, device=device
        )
        return report.table()

    try:
        table = asyncio.run(main())
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    console.print(table, markup=False, highlight=False)


@rm_app.command("list")
def rm_list() -> None:
    """Registered reward models, every version."""

    async def main() -> Table:
        from judge.runtime import Runtime
        from judge.store.reward_models_repository import RewardModelRepository

        async with await Runtime.open(get_settings()) as runtime, runtime.sessions() as session:
            records = await RewardModelRepository(session).list()
        table = Table()
        for column in ("name", "version", "active", "rubric", "axes", "base", "path"):
            table.add_column(column)
        for r in records:
            table.add_row(
                r.name, str(r.version), "yes" if r.active else "", r.rubric_hash[:12], str(len(r.axis_keys)),
                r.base_model, r.path,
            )  # fmt: skip
        return table

    try:
        console.print(asyncio.run(main()))
    except RubricJudgeError as exc:
        raise _fail(exc) from exc


@rm_app.command("activate")
def rm_activate(
    name: Annotated[str, typer.Argument(help="Registered name.")],
    version: Annotated[int, typer.Argument(min=1)],
) -> None:
    """Make ``NAME@VERSION`` the active version (a running server picks it up on POST /v1/reward-models/NAME/reload)."""

    async def main() -> str:
        from judge.runtime import Runtime
        from judge.store.reward_models_repository import RewardModelRepository

        async with await Runtime.open(get_settings()) as runtime, runtime.sessions() as session:
            record = await RewardModelRepository(session).set_active(name, version)
            await session.commit()
        return record.ref

    try:
        ref = asyncio.run(main())
    except RubricJudgeError as exc:
        raise _fail(exc) from exc
    console.print(f"{ref} is active; running servers: POST /v1/reward-models/{name}/reload")


def register(app: typer.Typer) -> None:
    app.add_typer(rm_app, name="rm")
