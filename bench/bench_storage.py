"""Issue 15 benchmark: bytes per verdict, write throughput, agreement on stored judges, prune --dry-run.

N synthetic Chinese samples go through the real path: the Scorer with the OpenAI judge backend against the
loopback stub judge (separate process, short rationales), the verdict writer, PostgreSQL. Then:
1. bytes per verdict, by table (heap + TOAST) and by index, after VACUUM ANALYZE (one verdict per sample);
2. write throughput (verdicts per second, scoring included: the stub answers at once);
3. an agreement study on the stored judge: ``judge:a`` against ``human:bench`` (rows, as a physician import
   makes them), read from the store and reported with 200 resamples, as ``GET /v1/agreement`` does;
4. ``prune --dry-run`` (failed older than 30 d, superseded, jobs finished over 90 d) after 2 % were judged again.

``--compare ROOT`` runs the same measurements, one after the other (never at once), on another checkout (e.g. main
at 5ca26cc, extracted to /tmp with ``git archive``): each run is a subprocess that imports that checkout's code.

    python bench/bench_storage.py [--n 10000 100000] [--compare /tmp/rj-main] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RERUN = 0.02  # share of samples judged again with the cache off: superseded verdicts for prune to find
CHUNK = 512  # samples per scoring call


def _samples(n: int) -> list[Any]:
    from bench.common import PATIENTS
    from judge.samples import SampleIn, normalise

    out = []
    for i in range(n):
        patient = f"{PATIENTS[i % len(PATIENTS)]}（第{i}位）"
        out.append(
            normalise(
                SampleIn.model_validate(
                    {
                        "messages": [{"role": "user", "content": patient}],
                        "reasoning": f"患者情绪焦虑，口语化描述症状，需先纠正表述再提取主诉。病例{i}。",
                        "response": f"先别着急。根据您的描述，建议尽快到医院就诊；如症状加重请立即拨打120。编号{i}。",
                    }
                )
            )
        )
    return out


async def _sizes(url: str) -> dict[str, Any]:
    """Heap + TOAST per table and size per index, after VACUUM ANALYZE (dead tuples gone, statistics fresh)."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    sa = make_url(url)
    conn = await asyncpg.connect(host=sa.host, port=sa.port, user=sa.username, database=sa.database)
    try:
        await conn.execute("VACUUM ANALYZE")
        tables = {
            r["relname"]: {"rows": int(r["n"]), "bytes": int(r["size"])}
            for r in await conn.fetch(
                "SELECT c.relname, pg_table_size(c.oid) AS size, "
                "(SELECT reltuples FROM pg_class WHERE oid = c.oid) AS n "
                "FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
                "WHERE s.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'alembic_version'"
            )
        }
        for name in tables:  # exact counts (reltuples is an estimate)
            tables[name]["rows"] = int(await conn.fetchval(f'SELECT count(*) FROM "{name}"'))
        indexes = {
            r["index"]: {"table": r["table"], "bytes": int(r["size"])}
            for r in await conn.fetch(
                "SELECT i.relname AS index, t.relname AS table, pg_relation_size(i.oid) AS size "
                "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_namespace s ON s.oid = t.relnamespace WHERE s.nspname = 'public'"
            )
        }
    finally:
        await conn.close()
    return {"tables": tables, "indexes": indexes}


async def _index_bloat(url: str) -> dict[str, float]:
    """Each verdicts and samples index against itself rebuilt (REINDEX): what random-key inserts left unused."""
    import asyncpg
    from sqlalchemy.engine import make_url

    sa = make_url(url)
    conn = await asyncpg.connect(host=sa.host, port=sa.port, user=sa.username, database=sa.database)
    query = (
        "SELECT i.relname, pg_relation_size(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname IN ('verdicts', 'samples')"
    )
    try:
        before = dict(await conn.fetch(query))
        await conn.execute("REINDEX TABLE verdicts")
        await conn.execute("REINDEX TABLE samples")
        after = dict(await conn.fetch(query))
    finally:
        await conn.close()
    return {name: before[name] / after[name] - 1 for name in before if after.get(name)}


async def _measure(n: int, url: str, judge_url: str, concurrency: int) -> dict[str, Any]:
    from judge.agreement.studies import agreement_from_store
    from judge.backends.factory import build_backend
    from judge.cache import MemoryCache
    from judge.profiles import JudgeProfile
    from judge.scorer import Scorer
    from judge.store.database import create_engine, make_session_factory
    from rubrics.registry import RubricRegistry

    rubric = RubricRegistry().resolve("prmed")
    engine = create_engine(url)
    sessions = make_session_factory(engine)
    out: dict[str, Any] = {"n": n}
    try:
        scorer = Scorer(cache=MemoryCache(1000, 3600), sessions=sessions, backend_factory=build_backend)
        profile = JudgeProfile.model_validate(
            {"name": "a", "model": "judge-model", "base_url": judge_url, "concurrency": concurrency,
             "timeout_s": 60, "max_retries": 3}
        )  # fmt: skip
        samples = _samples(n)
        started = time.perf_counter()
        judged: dict[str, dict[str, int]] = {}
        for start in range(0, n, CHUNK):
            batch = await scorer.score(rubric, profile, samples[start : start + CHUNK])
            for item in batch.items:
                if item.verdict is not None and item.verdict.complete:
                    judged[item.sample.hash] = {k: a.score for k, a in item.verdict.axes.items() if a.score}
        out["write_s"] = time.perf_counter() - started
        out["verdicts_per_s"] = n / out["write_s"]
        out["sizes"] = await _sizes(url)

        again = samples[: int(n * RERUN)]
        for start in range(0, len(again), CHUNK):
            await scorer.score(rubric, profile, again[start : start + CHUNK], use_cache=False)
        await scorer.aclose()

        # A physician who rated every sample: the judge's score, one point lower on every seventh sample.
        from judge.agreement.ratings import Rating
        from judge.agreement.store import save_ratings

        ratings = [
            Rating(sample_hash=h, rater="human:bench", axis=k, score=float(max(1, s - (i % 7 == 0))))
            for i, (h, axes) in enumerate(judged.items())
            for k, s in axes.items()
        ]
        for start in range(0, len(ratings), 50_000):
            async with sessions() as session:
                await save_ratings(session, rubric.content_hash, ratings[start : start + 50_000])
                await session.commit()
        await _sizes(url)  # VACUUM ANALYZE again, as a database in service would be

        from judge.agreement.repository import AgreementRepository

        # Best of three: the machine is shared, and the least disturbed run is the closest to the cost itself.
        reads, reports = [], []
        for _ in range(3):
            started = time.perf_counter()
            async with sessions() as session:
                columns = await AgreementRepository(session).rating_columns(
                    rubric.content_hash, ["judge:a", "human:bench"]
                )
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = await agreement_from_store(sessions, rubric, "judge:a,human:bench", n_boot=200, seed=0)
            reports.append(time.perf_counter() - started)
        out["agreement_read_s"] = min(reads)
        out["agreement_report_s"] = min(reports)
        out["agreement_ratings"] = len(columns)
        out["agreement_n_samples"] = report.n_samples
        out["agreement_alpha"] = next(g for g in report.group if g.axis == "safety").metrics["alpha_ordinal"].value

        if not (Path(sys.path[0]) / "judge" / "retention").is_dir():  # a checkout without prune
            out["prune_dry_run_s"] = None
        else:
            from datetime import UTC, datetime, timedelta

            from judge.retention.policy import PrunePolicy
            from judge.retention.service import plan_prune

            policy = PrunePolicy(
                now=datetime.now(UTC), failed_older_than=timedelta(days=30), superseded=True,
                jobs_finished_older_than=timedelta(days=90),
            )  # fmt: skip
            started = time.perf_counter()
            plan = await plan_prune(sessions, policy)
            out["prune_dry_run_s"] = time.perf_counter() - started
            out["prune_superseded"] = plan.rules["superseded"].removable
            out["prune_bytes"] = plan.bytes_freed
        out["index_bloat"] = await _index_bloat(url)
    finally:
        await engine.dispose()
    return out


def worker(args: argparse.Namespace) -> None:
    """One measurement with the code at ``--root`` (imported first), printed as JSON."""
    sys.path.insert(0, str(Path(args.root).resolve()))
    from bench.common import free_port, scratch_database, stub_judge

    port = free_port()
    with scratch_database() as url, stub_judge(port, 0.0):
        result = asyncio.run(_measure(args.n[0], url, f"http://127.0.0.1:{port}/v1", args.concurrency))
    print(json.dumps(result))
    # Also kept per run, so that a long series interrupted later still has what it measured.
    partial = ROOT / "bench" / "results" / f"storage-{Path(args.root).resolve().name}-{args.n[0]}.json"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps(result, default=str))


def _run(root: Path, n: int, concurrency: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--root", str(root), "--n", str(n), "--concurrency", str(concurrency)]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{root} n={n} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _per_verdict(result: dict[str, Any]) -> dict[str, float]:
    n = result["n"]
    sizes = result["sizes"]
    out: dict[str, float] = {}
    for table, t in sizes["tables"].items():
        out[f"{table} (heap+toast)"] = t["bytes"] / n
    for index, i in sizes["indexes"].items():
        out[f"  {index}"] = i["bytes"] / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--compare", type=Path, help="another checkout to measure the same way (e.g. main)")
    parser.add_argument("--compare-n", type=int, nargs="+", help="the N to compare at (default: every --n)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    sys.path.insert(0, str(ROOT))
    from rich.table import Table

    from bench.common import RESULTS, console

    runs: dict[str, dict[int, dict[str, Any]]] = {"branch": {}}
    if args.compare is not None:
        runs["compare"] = {}
    compare_n = set(args.compare_n or args.n)
    for n in sorted(set(args.n) | (compare_n if args.compare else set())):
        for label in runs:
            if (label == "compare" and n not in compare_n) or (label == "branch" and n not in args.n):
                continue
            root = ROOT if label == "branch" else args.compare
            console.print(f"[dim]{label}: N = {n:,} ...[/dim]")
            runs[label][n] = _run(root, n, args.concurrency)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "storage.json").write_text(json.dumps(runs, indent=2, default=str))

    for label, by_n in runs.items():
        table = Table(title=f"bytes per verdict by table and index ({label})")
        table.add_column("relation")
        for n in by_n:
            table.add_column(f"N = {n:,}", justify="right")
        per = {n: _per_verdict(r) for n, r in by_n.items()}
        names = sorted({k for p in per.values() for k in p}, key=lambda k: (k.strip().split(" ")[0], k))
        for name in names:
            values = [per[n].get(name, 0.0) for n in by_n]
            if max(values) >= 0.5:
                table.add_row(name, *(f"{v:,.0f}" for v in values))
        table.add_row("total", *(f"{sum(per[n].values()):,.0f}" for n in by_n), end_section=True)
        console.print(table)

    summary = Table(title="throughput, agreement on stored judges, prune --dry-run")
    summary.add_column("measure")
    for label, by_n in runs.items():
        for n in by_n:
            summary.add_column(f"{label} N = {n:,}", justify="right")
    measures = [
        ("bytes per verdict (all tables and indexes)", lambda r: f"{sum(_per_verdict(r).values()):,.0f}"),
        ("write throughput (verdicts/s)", lambda r: f"{r['verdicts_per_s']:,.0f}"),
        ("agreement: read ratings (s)", lambda r: f"{r['agreement_read_s']:.2f}"),
        ("agreement: report, 200 resamples (s)", lambda r: f"{r['agreement_report_s']:.2f}"),
        ("agreement: ratings read", lambda r: f"{r['agreement_ratings']:,}"),
        ("agreement: safety α", lambda r: f"{r['agreement_alpha']:.4f}"),
        (
            "prune --dry-run (s)",
            lambda r: "n/a" if r.get("prune_dry_run_s") is None else f"{r['prune_dry_run_s']:.2f}",
        ),
    ]
    for name, fmt in measures:
        summary.add_row(name, *(fmt(r) for by_n in runs.values() for r in by_n.values()))
    console.print(summary)

    bloat = Table(title="index size against the same index rebuilt (REINDEX): unused space from random-key inserts")
    bloat.add_column("index")
    for label, by_n in runs.items():
        for n in by_n:
            bloat.add_column(f"{label} N = {n:,}", justify="right")
    names = sorted({k for by_n in runs.values() for r in by_n.values() for k in r.get("index_bloat", {})})
    for name in names:
        cells = [r.get("index_bloat", {}).get(name) for by_n in runs.values() for r in by_n.values()]
        bloat.add_row(name, *("" if c is None else f"{c:+.0%}" for c in cells))
    console.print(bloat)


if __name__ == "__main__":
    main()
