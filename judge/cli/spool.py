"""``rubric-judge spool status`` and ``spool replay``: verdicts answered while the store was down, on local disk.

The API and every CLI command replay the spool by themselves when the store answers (and at start-up); these
commands let an operator see what is waiting and push it in now, e.g. after the service was retired.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from judge.settings import get_settings

spool_app = typer.Typer(help="Verdicts waiting in the local spool (the store was down).", no_args_is_help=True)
console = Console()


@spool_app.command("status")
def status() -> None:
    """Spool files of this database (RJ_SPOOL_DIR) and how many verdicts each holds; refused rows apart."""
    settings = get_settings()
    directory = settings.spool_dir
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    table = Table(title=f"spool {directory}")
    for column in ("file", "verdicts", "kind"):
        table.add_column(column)
    for path in files:
        with path.open("rb") as handle:
            count = sum(1 for line in handle if line.strip())
        kind = "refused by the store (not replayed)" if path.name.startswith("rejected-") else "waiting"
        table.add_row(path.name, str(count), kind)
    console.print(table if files else f"nothing spooled under {directory}")


@spool_app.command("replay")
def replay(
    timeout_s: Annotated[float, typer.Option(help="Give up after this many seconds (the store still down).")] = 60.0,
) -> None:
    """Store every spooled verdict of this database now (idempotent: verdicts already stored are skipped)."""
    from judge.runtime import Runtime

    async def run() -> tuple[bool, int]:
        async with await Runtime.open(get_settings()) as runtime:
            writer = runtime.scorer.writer
            writer.start()
            done = await writer.settled(timeout=timeout_s)
            return done, writer.replayed

    done, replayed = asyncio.run(run())
    console.print(f"replayed {replayed} verdicts")
    if not done:
        console.print("[red]the store did not take everything in time; the rest stays in the spool[/red]")
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.add_typer(spool_app, name="spool")
