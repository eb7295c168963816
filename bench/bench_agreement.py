"""Issue 6 benchmark: agreement statistics for 13 axes, 5 raters, 100,000 samples, 20 % missing, 1,000 resamples.

Each stage runs in its own process so that its peak memory (max RSS, interpreter and libraries included) is its own:
1. engine: ``agreement_from_matrix`` on a ready rating matrix: every metric, per axis and overall, for the group
   and all 10 rater pairs, with 1,000 bootstrap resamples of samples. Goal: under 60 s and 2 GB.
2. matrix: ``RatingMatrix.from_columns`` on the ~5.2 million rating rows as parallel columns.
3. end to end: ``compute_agreement`` on ~5.2 million row objects shaped like the store's ``Rating`` rows
   (rater patterns, matrix, engine), then the report files (JSON, PNG figures, HTML).

    python bench/bench_agreement.py [--samples 100000] [--raters 5] [--missing 0.2] [--boot 1000] [--show]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rubrics.schema import Rubric  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GOAL_S, GOAL_MB = 60.0, 2048.0
AXES = (
    ("cot", "emotion_perception", "情绪感知"),
    ("cot", "perturbation_identification", "扰动识别"),
    ("cot", "utterance_correction", "话语纠正"),
    ("cot", "chief_complaint_extraction", "主诉提取"),
    ("cot", "medical_reasoning", "医学推理"),
    ("response", "medical_accuracy", "医学准确性"),
    ("response", "safety", "安全性"),
    ("response", "completeness", "完整性"),
    ("response", "actionability", "可操作性"),
    ("response", "communication", "沟通表达"),
    ("cross", "consistency", "前后一致"),
    ("cross", "faithful_transfer", "忠实传递"),
    ("cross", "tone_alignment", "语气一致"),
)


@dataclass(frozen=True, slots=True)
class StoreRow:
    """The shape of ``judge.store.ratings_repository.Rating`` (what ``RatingRepository.query`` returns)."""

    rubric_hash: str
    sample_hash: str
    rater: str
    axis: str
    score: float
    run: int = 0
    verdict_id: str | None = None


def rubric() -> Rubric:
    def text(zh: str, en: str) -> dict[str, str]:
        return {"zh": zh, "en": en}

    return Rubric.model_validate(
        {
            "name": "prmed-bench",
            "version": 1,
            "description": text("基准", "benchmark"),
            "layers": [{"key": k, "title": text(k, k)} for k in ("cot", "response", "cross")],
            "axes": [
                {
                    "key": key,
                    "layer": layer,
                    "title": text(zh, key.replace("_", " ")),
                    "description": text(zh, key),
                    "anchors": {level: text(str(level), str(level)) for level in range(1, 6)},
                }
                for layer, key, zh in AXES
            ],
        }
    )


def scores(n: int, raters: int, missing: float, seed: int = 0) -> np.ndarray:
    """axes × samples × raters Likert scores: latent quality + rater bias + noise; NaN where missing."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(3.6, 0.9, (len(AXES), n, 1)).astype(np.float32)
    bias = np.linspace(-0.3, 0.3, raters, dtype=np.float32)[None, None, :]
    noise = rng.normal(0, 0.6, (len(AXES), n, raters)).astype(np.float32)
    out = np.clip(np.rint(truth + bias + noise), 1, 5)
    out[rng.random(out.shape) < missing] = np.nan
    return out


def rater_names(raters: int) -> list[str]:
    return [
        "judge:deepseek",
        "judge:qwen",
        "rm:prmed-rm@1",
        "human:张医生",
        "human:李医生",
        *[f"human:r{i}" for i in range(max(0, raters - 5))],
    ][:raters]


def columns(data: np.ndarray, raters: list[str]) -> tuple[list[str], list[str], list[str], np.ndarray]:
    keys = [key for _, key, _ in AXES]
    hashes = [f"{i:064x}" for i in range(data.shape[1])]
    a, s, r = np.nonzero(~np.isnan(data))
    return (
        [hashes[i] for i in s.tolist()],
        [raters[i] for i in r.tolist()],
        [keys[i] for i in a.tolist()],
        data[a, s, r],
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from judge.agreement.matrix import RatingMatrix
    from judge.agreement.service import agreement_from_matrix, compute_agreement

    rub = rubric()
    raters = rater_names(args.raters)
    data = scores(args.samples, args.raters, args.missing)
    out: dict[str, Any] = {"stage": name}
    if name == "engine":
        matrix = RatingMatrix(
            axes=tuple(rub.axis_keys),
            raters=tuple(raters),
            samples=tuple(f"{i:064x}" for i in range(args.samples)),
            scores=data,
        )
        out["rss_before_mb"] = peak_mb()
        start = time.perf_counter()
        report = agreement_from_matrix(matrix, rub, n_boot=args.boot, seed=0)
        out["wall_s"] = time.perf_counter() - start
        out["overall"] = {k: v.value for k, v in report.group_overall.metrics.items()}
        if args.show:
            from judge.agreement.report import terminal_table

            Console(width=220).print(terminal_table(report))
    elif name == "matrix":
        cols = columns(data, raters)
        out["rows"] = len(cols[3])
        out["rss_before_mb"] = peak_mb()
        start = time.perf_counter()
        RatingMatrix.from_columns(*cols, axes=rub.axis_keys, raters=raters)
        out["wall_s"] = time.perf_counter() - start
    else:
        from judge.agreement.report import write_report

        samples, who, axis, value = columns(data, raters)
        rows = [
            StoreRow(rub.content_hash, s, r, a, v)
            for s, r, a, v in zip(samples, who, axis, value.tolist(), strict=True)
        ]
        del samples, who, axis, value
        out["rows"] = len(rows)
        out["rss_before_mb"] = peak_mb()
        start = time.perf_counter()
        report = compute_agreement(rows, rub, "judge:*,rm:*,human:*", n_boot=args.boot, seed=0)
        out["wall_s"] = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_report(report, Path(tmp))
            out["report_s"] = time.perf_counter() - start
    out["peak_mb"] = peak_mb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--raters", type=int, default=5)
    parser.add_argument("--missing", type=float, default=0.2)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--show", action="store_true", help="print the agreement table of the engine stage")
    parser.add_argument("--stage", choices=["engine", "matrix", "end_to_end"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args)))
        return

    results = []
    for name in ("engine", "matrix", "end_to_end"):
        command = [sys.executable, __file__, "--stage", name, "--samples", str(args.samples)]
        command += ["--raters", str(args.raters), "--missing", str(args.missing), "--boot", str(args.boot)]
        if args.show and name == "engine":
            command.append("--show")
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        lines = done.stdout.strip().splitlines()
        if len(lines) > 1:
            print("\n".join(lines[:-1]))
        results.append(json.loads(lines[-1]))

    engine, matrix, e2e = results
    table = Table(
        title=f"agreement: {len(AXES)} axes × {args.raters} raters × {args.samples:,} samples, "
        f"{args.missing:.0%} missing, {args.boot:,} resamples"
    )
    for column in ("measure", "value", "goal", "met"):
        table.add_column(column)

    def row(measure: str, value: str, goal: str = "", met: bool | None = None) -> None:
        table.add_row(measure, value, goal, "" if met is None else ("yes" if met else "NO"))

    row("engine: wall time", f"{engine['wall_s']:.1f} s", f"< {GOAL_S:.0f} s", engine["wall_s"] < GOAL_S)
    row("engine: peak RSS", f"{engine['peak_mb']:.0f} MB", f"< {GOAL_MB:.0f} MB", engine["peak_mb"] < GOAL_MB)
    row("engine: RSS before the call (data, libraries)", f"{engine['rss_before_mb']:.0f} MB")
    row(f"matrix from {matrix['rows']:,} column rows: wall time", f"{matrix['wall_s']:.1f} s")
    row("matrix: peak RSS (rows included)", f"{matrix['peak_mb']:.0f} MB")
    e2e_total = e2e["wall_s"]
    row(f"end to end from {e2e['rows']:,} row objects: wall time", f"{e2e_total:.1f} s", f"< {GOAL_S:.0f} s",
        e2e_total < GOAL_S)  # fmt: skip
    row("end to end: peak RSS (row objects included)", f"{e2e['peak_mb']:.0f} MB")
    row("report files (JSON, 11 PNG, HTML): wall time", f"{e2e['report_s']:.1f} s")
    Console().print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "agreement.json").write_text(json.dumps({"args": vars(args), "stages": results}, indent=2))


if __name__ == "__main__":
    main()
