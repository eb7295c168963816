"""``rubric-judge rewards``: the RL reward path from a terminal, for looking at one batch of rollouts.

Registered on the main ``rubric-judge`` app by :func:`register`. It goes through the same service as
``POST /v1/rewards``, so what it prints is what a trainer would have received.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from judge.errors import InvalidSample, RubricJudgeError
from judge.settings import get_settings

console = Console()
err_console = Console(stderr=True)


def read_items(path: Path) -> list[Any]:
    """One rollout per non-blank line (the items of ``POST /v1/rewards``); a line that is not JSON is an error."""
    items: list[Any] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                items.append(orjson.loads(raw))
            except orjson.JSONDecodeError as exc:
                raise InvalidSample(f"line {number} is not JSON: {exc}", field=f"line {number}") from exc
    return items


def rewards(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL, one rollout a line.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write the whole response here (JSON).")] = None,
    rubric: Annotated[str | None, typer.Option(help="Rubric (default RJ_REWARD_RUBRIC).")] = None,
    judge: Annotated[str | None, typer.Option(help="Judge profile (default RJ_REWARD_JUDGE).")] = None,
    on_failure: Annotated[str, typer.Option(help="null | floor | skip: a failed item's reward.")] = "null",
    deadline_ms: Annotated[int | None, typer.Option(help="Budget for the whole batch.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Judge again even if a verdict exists.")] = False,
    rationale: Annotated[
        str | None, typer.Option(help="Ask the judge for full | brief | none (scores only; cheapest) rationales.")
    ] = None,
) -> None:
    """Rewards for a batch of rollouts (grouped by group_id), as /v1/rewards computes them."""
    if rationale is not None and rationale not in ("full", "brief", "none"):
        raise typer.BadParameter("full, brief or none", param_hint="--rationale")
    from judge.rewards.schemas import RewardsRequest
    from judge.rewards.service import reward_request
    from judge.runtime import Runtime

    async def main() -> dict[str, Any]:
        request = RewardsRequest.model_validate(
            {"rubric": rubric, "judge": judge, "items": read_items(source), "on_failure": on_failure,
             "deadline_ms": deadline_ms, "cache": not no_cache, "rationale": rationale}
        )  # fmt: skip
        async with await Runtime.open(get_settings()) as runtime:
            return await reward_request(runtime, request)

    try:
        body = asyncio.run(main())
    except RubricJudgeError as exc:
        where = f" ({exc.field})" if exc.field else ""
        err_console.print(f"[red]{exc.type}{where}:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    if out is not None:
        out.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    _print(body)


def _print(body: dict[str, Any]) -> None:
    items = Table(title=f"{body['rubric']} · judge {body['judge']} ({body['mode']})")
    for column in ("#", "id", "group", "reward", "passed", "status", "cached", "error"):
        items.add_column(column)
    for item in body["items"]:
        reward = item.get("reward")
        items.add_row(
            str(item.get("index")), str(item.get("id") or ""), str(item.get("group_id") or ""),
            "" if reward is None else f"{reward:.3f}", str(item.get("passed")), str(item.get("status")),
            str(item.get("cache_hit")), str(item.get("error") or "")[:60],
        )  # fmt: skip
    console.print(items)
    groups = Table(title="groups")
    for column in ("group", "size", "scored", "mean", "std", "distinct", "zero variance"):
        groups.add_column(column)
    for g in body["groups"]:
        mean, std = g.get("mean"), g.get("std")
        groups.add_row(
            str(g["group_id"]), str(g["size"]), str(g["scored"]), "" if mean is None else f"{mean:.3f}",
            "" if std is None else f"{std:.3f}", str(g["distinct"]), str(g["zero_variance"]),
        )  # fmt: skip
    console.print(groups)
    fraction = body.get("zero_variance_fraction")
    console.print(f"zero-variance groups: {'n/a' if fraction is None else f'{fraction:.2f}'}")


def register(app: typer.Typer) -> None:
    app.command("rewards")(rewards)
