"""Issue 15 benchmark: the agreement study on stored judges, this checkout against another (main), interleaved.

On a shared machine, two runs minutes apart see different loads. Here both stores are filled first (N verdicts
of ``judge:a`` on the prmed rubric, 13 ok axes each, stub-length rationales, and a physician ``human:bench``
rating every axis), each with its own checkout's code: main's verdict writer also stores the judge's rating rows,
this branch's does not. Then the read (``AgreementRepository.rating_columns``) and the whole
``agreement_from_store`` (what ``GET /v1/agreement`` runs, 200 resamples) are timed in alternating fresh
processes, ``--rounds`` times each; the table gives medians and the best.

    python bench/bench_storage_agreement.py --compare /tmp/rj-main [--n 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RATERS = ["judge:a", "human:bench"]


async def _fill(url: str, n: int) -> None:
    from judge.agreement.ratings import Rating
    from judge.agreement.store import save_ratings
    from judge.samples import SampleIn, normalise
    from judge.store.verdicts_repository import VerdictRepository
    from judge.verdicts import AxisResult, AxisStatus, Usage, Verdict
    from rubrics.registry import RubricRegistry

    try:  # main: the verdict writer also stored every complete verdict as rating rows
        from judge.agreement.store import add_verdict_ratings  # type: ignore[attr-defined]
    except ImportError:
        add_verdict_ratings = None
    from judge.store.database import create_engine, make_session_factory

    rubric = RubricRegistry().resolve("prmed")
    engine = create_engine(url)
    sessions = make_session_factory(engine)
    now = time.time()
    try:
        for start in range(0, n, 1000):
            items, ratings = [], []
            for i in range(start, min(n, start + 1000)):
                sample = normalise(
                    SampleIn.model_validate(
                        {"messages": [{"role": "user", "content": f"俺娘心口窝疼（第{i}位）"}],
                         "reasoning": f"患者焦虑，病例{i}。", "response": f"建议尽快就医，编号{i}。"}
                    )
                )  # fmt: skip
                scores = {k: 1 + (i + j) % 5 for j, k in enumerate(rubric.axis_keys)}
                axes = {
                    k: AxisResult(score=s, status=AxisStatus.ok, rationale=f"第{i}例：该维度表现{s}分，理由简短。")
                    for k, s in scores.items()
                }
                verdict = Verdict(
                    id=uuid.uuid4().hex, cache_key=uuid.uuid4().hex * 2, sample_hash=sample.hash,
                    rubric_ref=rubric.ref, rubric_hash=rubric.content_hash, judge="a", profile_hash="p" * 64,
                    axes=axes, usage=Usage(calls=1, prompt_tokens=900, completion_tokens=300), latency_ms=5.0,
                    created_at=now + i * 1e-3,
                )  # fmt: skip
                items.append((verdict, sample))
                ratings += [
                    Rating(sample_hash=sample.hash, rater="human:bench", axis=k, score=float(max(1, s - (i % 7 == 0))))
                    for k, s in scores.items()
                ]
            async with sessions() as session:
                await VerdictRepository(session).add_many(items)
                if add_verdict_ratings is not None:
                    await add_verdict_ratings(session, [v for v, _ in items])
                await save_ratings(session, rubric.content_hash, ratings)
                await session.commit()
        async with engine.connect() as conn:  # as a database in service would be: vacuumed, analysed
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).exec_driver_sql("VACUUM ANALYZE")
    finally:
        await engine.dispose()


async def _time(url: str) -> dict[str, Any]:
    from judge.agreement.repository import AgreementRepository
    from judge.agreement.studies import agreement_from_store
    from judge.store.database import create_engine, make_session_factory
    from rubrics.registry import RubricRegistry

    rubric = RubricRegistry().resolve("prmed")
    engine = create_engine(url)
    sessions = make_session_factory(engine)
    try:
        started = time.perf_counter()
        async with sessions() as session:
            columns = await AgreementRepository(session).rating_columns(rubric.content_hash, RATERS)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        report = await agreement_from_store(sessions, rubric, ",".join(RATERS), n_boot=200, seed=0)
        report_s = time.perf_counter() - started
        safety = next(g for g in report.group if g.axis == "safety").metrics["alpha_ordinal"]
        return {"read_s": read_s, "report_s": report_s, "ratings": len(columns), "alpha": safety.value,
                "low": safety.low, "high": safety.high}  # fmt: skip
    finally:
        await engine.dispose()


def _child(root: Path, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--root", str(root), *args]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{root} {args}: {proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1] or "{}")
    return result


def _admin(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    from bench.common import PG_ADMIN

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--root", default=str(ROOT))
    parser.add_argument("--fill", help=argparse.SUPPRESS)
    parser.add_argument("--time", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.root).resolve()))
    if args.fill:
        from judge.store.migrate import upgrade_sync

        upgrade_sync(args.fill)
        asyncio.run(_fill(args.fill, args.n))
        print("{}")
        return
    if args.time:
        print(json.dumps(asyncio.run(_time(args.time))))
        return
    if args.compare is None:
        parser.error("--compare ROOT is required")

    from rich.table import Table
    from sqlalchemy.engine import make_url

    from bench.common import PG_ADMIN, RESULTS, console

    roots = {"branch": ROOT, "compare": args.compare.resolve()}
    urls: dict[str, str] = {}
    try:
        for label in roots:
            name = f"rj_bench_agr_{uuid.uuid4().hex[:10]}"
            _admin(f'CREATE DATABASE "{name}"')
            urls[label] = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
            console.print(f"[dim]{label}: filling {args.n:,} verdicts ...[/dim]")
            _child(roots[label], "--fill", urls[label], "--n", str(args.n))
        timings: dict[str, list[dict[str, Any]]] = {label: [] for label in roots}
        for _ in range(args.rounds):
            for label in roots:
                timings[label].append(_child(roots[label], "--time", urls[label]))
    finally:
        for url in urls.values():
            _admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "storage_agreement.json").write_text(json.dumps({"n": args.n, "timings": timings}, indent=2))
    table = Table(title=f"agreement on stored judges, N = {args.n:,} ({args.rounds} alternating rounds)")
    table.add_column("measure")
    for label in roots:
        table.add_column(f"{label}: median", justify="right")
        table.add_column(f"{label}: best", justify="right")
    for key, name in (("read_s", "read ratings (s)"), ("report_s", "agreement_from_store, 200 resamples (s)")):
        cells = []
        for label in roots:
            values = [t[key] for t in timings[label]]
            cells += [f"{statistics.median(values):.2f}", f"{min(values):.2f}"]
        table.add_row(name, *cells)
    table.add_row("ratings read", *[c for label in roots for c in (f"{timings[label][0]['ratings']:,}", "")])
    table.add_row(
        "safety α [95 % CI]",
        *[c for label in roots for c in (
            f"{timings[label][0]['alpha']:.4f} [{timings[label][0]['low']:.4f}, {timings[label][0]['high']:.4f}]", "")],
    )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
