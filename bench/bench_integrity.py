"""Reward integrity (issue 9): what each known exploit earns against its honest baseline.

Runs every scenario of ``tests/integrity/scenarios/`` (the real app, a SQLite store, the loopback judge scripted
as a judge the exploit fools) and prints one row per exploit: the baseline's reward, the exploit's, and the gain.
``--json PATH`` also writes the figures. To measure "before", run the same two files on the base commit::

    mkdir /tmp/rj-base && git archive 5ca26cc | tar -x -C /tmp/rj-base
    cp bench/bench_integrity.py /tmp/rj-base/bench/ && cp -r tests/integrity /tmp/rj-base/tests/
    cd /tmp/rj-base && PYTHONPATH=/tmp/rj-base /path/to/.venv/bin/python bench/bench_integrity.py --json before.json

(the scenarios use only requests and fields that existed there). ``docs/reward-integrity.md`` has both tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integrity.scenarios import SCENARIOS, context  # noqa: E402


async def measure() -> dict[str, dict[str, float | str]]:
    rows: dict[str, dict[str, float | str]] = {}
    for name, (title, run) in SCENARIOS.items():
        async with context() as ctx:
            outcome = await run(ctx)
        rows[name] = {
            "title": title,
            "measure": outcome.measure,
            "baseline": round(outcome.baseline, 4),
            "exploit": round(outcome.exploit, 4),
            "gain": round(outcome.exploit - outcome.baseline, 4),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = asyncio.run(measure())
    print("| exploit | measure | baseline | exploit | gain |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| `{name}` | {row['measure']} | {row['baseline']} | {row['exploit']} | {row['gain']:+} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
