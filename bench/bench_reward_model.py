"""Issue 5 benchmark: the local reward model.

1. CPU, tiny model (random Qwen3, 2 layers, hidden 64) and a small one (4 layers, hidden 256):
   64 concurrent callers with one sample each, rounds of 64. Dynamic batching (the engine) against one
   forward pass per request (as OpenRLHF's ``serve_rm`` does), both through one worker thread.
   Goal: >= 5x the throughput.
2. Heads: ordinal vs regression on synthetic judged samples (labels with +-1 noise), several seeds;
   held-out QWK, Spearman, MAE, pass F1 and calibration.
3. GPU (``--gpu``): a Qwen3-0.6B-shaped model with random weights and a merged LoRA, bf16, 1,024-token
   inputs; samples/s and the fraction of the GPU's dense bf16 peak, FLOPs = 2 x parameters x tokens.
   Goal: >= 40 % of peak.

    python bench/bench_reward_model.py                 # CPU throughput + heads
    python bench/bench_reward_model.py --gpu           # GPU only
    python bench/bench_reward_model.py --skip-heads --callers 64 --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import RESULTS, console, percentile, print_table  # noqa: E402
from reward_model.config import ModelSettings, SplitSettings, TrainSettings  # noqa: E402
from reward_model.data import Conversation, Example, TokenIds, build_examples, split_by_prompt  # noqa: E402
from reward_model.engine import EngineSettings, RewardEngine  # noqa: E402
from reward_model.evaluate import evaluate_predictions, label_mean, predict_examples  # noqa: E402
from reward_model.model import ScoringModel, build_reward_model  # noqa: E402
from reward_model.scores import Scores, round_score  # noqa: E402
from reward_model.synthetic import synthetic_records  # noqa: E402
from reward_model.tiny import qwen3_0_6b_config, save_tiny_base  # noqa: E402
from reward_model.train import train  # noqa: E402

AXES_13 = (
    "emotion_perception", "perturbation_identification", "utterance_correction", "chief_complaint_extraction",
    "medical_reasoning", "medical_accuracy", "safety", "completeness", "actionability", "communication",
    "consistency", "faithful_transfer", "tone_alignment",
)  # fmt: skip

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; first match wins.
PEAK_BF16_TFLOPS = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("H800", 989.4),
    ("H20", 148.0),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
    ("RTX 6000 Ada", 364.2),
)


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


# ---------------------------------------------------------------------------------------------- 1. CPU


def serving_model(base_dir: Path, axes: tuple[str, ...]) -> ScoringModel:
    """A random-head model as it would be served: LoRA merged into the base, eval mode, fp32 on CPU."""
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = build_reward_model(ModelSettings(base_model=str(base_dir), max_length=512), axes, device="cpu")
    model.backbone = model.backbone.merge_and_unload()  # type: ignore[operator]
    model.eval()
    return ScoringModel(model, AutoTokenizer.from_pretrained(base_dir), "bench", torch.device("cpu"))


class PerRequest:
    """One forward pass per request, run inside the request handler (what OpenRLHF's serve_rm does)."""

    def __init__(self, scoring: ScoringModel) -> None:
        self.scoring = scoring

    async def score(self, items: list[Conversation]) -> list[Scores]:
        with torch.inference_mode():
            return self.scoring.score_encoded(self.scoring.encode(items))


async def run_callers(
    score: Callable[[list[Conversation]], Awaitable[list[Scores]]], convs: list[Conversation], rounds: int
) -> tuple[float, list[float]]:
    """``rounds`` rounds of one concurrent call per conversation; returns wall seconds and per-call latencies."""
    latencies: list[float] = []

    async def call(conv: Conversation) -> None:
        started = time.perf_counter()
        await score([conv])
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(call(c) for c in convs))
    return time.perf_counter() - started, latencies


def forward_ceiling(scoring: ScoringModel, convs: list[Conversation]) -> tuple[float, float]:
    """Best per-sample forward time alone (batch 1) and in one batch of all: the most batching can give."""
    encoded = sorted(scoring.encode(convs), key=lambda e: len(e.input_ids))
    best_1 = best_all = float("inf")
    with torch.inference_mode():
        for _ in range(5):
            started = time.perf_counter()
            for e in encoded:
                scoring.score_encoded([e])
            best_1 = min(best_1, (time.perf_counter() - started) / len(encoded))
            started = time.perf_counter()
            scoring.score_encoded(encoded)
            best_all = min(best_all, (time.perf_counter() - started) / len(encoded))
    return best_1, best_all


async def compare(scoring: ScoringModel, convs: list[Conversation], rounds: int, repeats: int) -> dict[str, Any]:
    """Per-request forwards against the engine, same model, same callers."""
    per_request = PerRequest(scoring)
    engine = RewardEngine(scoring, EngineSettings(max_wait_ms=2.0))
    try:
        await run_callers(per_request.score, convs, 1)  # warm-up
        await run_callers(engine.score, convs, 1)
        walls: dict[str, list[float]] = {"per_request": [], "batched": []}
        lats: dict[str, list[float]] = {"per_request": [], "batched": []}
        # Alternate the two modes so that noise from other processes hits both alike.
        for _ in range(repeats):
            for mode, fn in (("per_request", per_request.score), ("batched", engine.score)):
                wall, lat = await run_callers(fn, convs, rounds)
                walls[mode].append(wall)
                lats[mode].extend(lat)
        return {"walls": walls, "lats": lats, "mean_batch": engine.stats.mean_batch_size}
    finally:
        await engine.aclose()


CPU_CASES = (
    # label, hidden, layers, axes whose markers the samples carry, filler words per CoT/response (input length)
    ("tiny (test config: 2 layers, hidden 64), ~100-token samples", 64, 2, 13, (16, 24)),
    ("tiny (test config: 2 layers, hidden 64), ~35-token samples", 64, 2, 2, (1, 3)),
    ("small (4 layers, hidden 256), ~100-token samples", 256, 4, 13, (16, 24)),
)


def bench_cpu(callers: int, rounds: int, repeats: int, work: Path) -> list[dict[str, Any]]:
    rows = []
    for label, hidden, layers, marked, filler in CPU_CASES:
        records = synthetic_records(AXES_13[:marked], n_prompts=callers, rollouts=1, filler_words=filler, seed=7)
        convs = [r.conversation for r in records]
        base = work / f"base-{hidden}-{layers}"
        if not base.exists():
            save_tiny_base(base, hidden_size=hidden, layers=layers)
        scoring = serving_model(base, AXES_13)
        tokens = statistics.mean(len(e.input_ids) for e in scoring.encode(convs))
        measured = asyncio.run(compare(scoring, convs, rounds, repeats))
        ceiling_1, ceiling_all = forward_ceiling(scoring, convs)
        n = callers * rounds
        wall_1 = statistics.median(measured["walls"]["per_request"])
        wall_b = statistics.median(measured["walls"]["batched"])
        lat_1, lat_b = measured["lats"]["per_request"], measured["lats"]["batched"]
        row: dict[str, Any] = {
            "model": label,
            "hidden": hidden,
            "layers": layers,
            "callers": callers,
            "rounds": rounds,
            "repeats": repeats,
            "threads": torch.get_num_threads(),
            "mean_tokens": round(tokens, 1),
            "per_request_samples_s": n / wall_1,
            "per_request_p50_ms": 1000 * percentile(lat_1, 50),
            "per_request_p95_ms": 1000 * percentile(lat_1, 95),
            "batched_samples_s": n / wall_b,
            "batched_p50_ms": 1000 * percentile(lat_b, 50),
            "batched_p95_ms": 1000 * percentile(lat_b, 95),
            "batched_mean_batch": measured["mean_batch"],
            "speedup": wall_1 / wall_b,
            "forward_ms_per_sample_batch1": 1000 * ceiling_1,
            "forward_ms_per_sample_batched": 1000 * ceiling_all,
            "forward_ceiling_ratio": ceiling_1 / ceiling_all,
        }
        rows.append(row)
        lat_1_text = f"{row['per_request_p50_ms']:.1f} / {row['per_request_p95_ms']:.1f}"
        lat_b_text = f"{row['batched_p50_ms']:.1f} / {row['batched_p95_ms']:.1f}"
        ceiling_text = f"{1000 * ceiling_1:.3f} / {1000 * ceiling_all:.3f} ({ceiling_1 / ceiling_all:.1f}x)"
        print_table(
            f"CPU ({row['threads']} threads), {label}, {callers} concurrent callers x {rounds} rounds, "
            f"~{tokens:.0f} tokens/sample, median of {repeats}",
            [
                ("one forward per request: samples/s", f"{row['per_request_samples_s']:.0f}", "", None),
                ("  p50 / p95 latency ms", lat_1_text, "", None),
                ("dynamic batching: samples/s", f"{row['batched_samples_s']:.0f}", "", None),
                ("  p50 / p95 latency ms", lat_b_text, "", None),
                ("  mean batch size", f"{measured['mean_batch']:.1f}", "", None),
                ("forward ms/sample alone / batched (ceiling)", ceiling_text, "", None),
                ("throughput ratio", f"{row['speedup']:.1f}x", ">= 5x", row["speedup"] >= 5),
            ],
        )
    return rows


# ---------------------------------------------------------------------------------------------- 2. heads


def mode_qwk(predictions: list[Scores], examples: list[Example]) -> float:
    from sklearn.metrics import cohen_kappa_score

    values = []
    for a, axis in enumerate(predictions[0].axis_keys):
        rows = [(p.mode_of(axis), e.targets[a]) for p, e in zip(predictions, examples, strict=True)]
        labels = [round_score(label_mean(t)) for _, t in rows if t is not None]
        modes = [m for m, t in rows if t is not None]
        values.append(float(cohen_kappa_score(labels, modes, weights="quadratic", labels=[1, 2, 3, 4, 5])))
    return statistics.mean(values)


def bench_heads(work: Path, seeds: int) -> list[dict[str, Any]]:
    from transformers import AutoTokenizer

    axes = ("emotion_perception", "safety", "consistency", "completeness")
    base = save_tiny_base(work / "base-heads")
    tokenizer = AutoTokenizer.from_pretrained(base)
    settings = TrainSettings(learning_rate=3e-3, epochs=8, batch_size=16, patience=3)
    out: list[dict[str, Any]] = []
    for seed in range(seeds):
        records = synthetic_records(axes, n_prompts=160, rollouts=4, label_noise=0.15, seed=100 + seed)
        examples = build_examples(records, tokenizer, axes, 256)
        splits = split_by_prompt(examples, SplitSettings(val_fraction=0.15, test_fraction=0.2, seed=seed))
        for head in ("ordinal", "regression"):
            torch.manual_seed(seed)
            model_settings = ModelSettings(base_model=str(base), head=head, max_length=256)
            model = build_reward_model(model_settings, axes, device="cpu")
            started = time.perf_counter()
            seeded = settings.model_copy(update={"seed": seed})
            train(model, splits.train, splits.val, seeded, pad_id=tokenizer.pad_token_id)
            seconds = time.perf_counter() - started
            scoring = ScoringModel(model, tokenizer, head, torch.device("cpu"))
            predictions = predict_examples(scoring, splits.test)
            report = evaluate_predictions(predictions, [e.targets for e in splits.test])
            out.append(
                {
                    "seed": seed,
                    "head": head,
                    "test_samples": report.n_samples,
                    "qwk": report.summary["mean_qwk"],
                    # The same, with the most probable level as the integer (ordinal only).
                    "qwk_mode": mode_qwk(predictions, splits.test) if head == "ordinal" else float("nan"),
                    "spearman": report.summary["mean_spearman"],
                    "mae": report.summary["mean_mae"],
                    "pass_f1": statistics.mean(m.pass_f1 or 0.0 for m in report.axes.values()),
                    "ece": statistics.mean(m.ece or 0.0 for m in report.axes.values()),
                    "brier": statistics.mean(m.brier or 0.0 for m in report.axes.values()),
                    "train_s": seconds,
                }
            )
            measured = " ".join(f"{k}={v:.3f}" for k, v in out[-1].items() if isinstance(v, float))
            console.print(f"seed {seed} {head:<10} {measured}")
    names = ("qwk", "qwk_mode", "spearman", "mae", "pass_f1", "ece", "brier")
    table = []
    for head in ("ordinal", "regression"):
        rows = [r for r in out if r["head"] == head]
        known = {k: [r[k] for r in rows if r[k] == r[k]] for k in names}  # NaN != NaN: drops "not measured"
        m = {k: statistics.mean(v) if v else float("nan") for k, v in known.items()}
        sd = {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in known.items()}
        agreement = " / ".join(f"{m[k]:.3f}±{sd[k]:.3f}" for k in ("qwk", "spearman", "mae"))
        passing = " / ".join(f"{m[k]:.3f}±{sd[k]:.3f}" for k in ("pass_f1", "ece", "brier"))
        table.append((f"{head}: QWK / Spearman / MAE", agreement, "", None))
        if head == "ordinal":
            table.append(("ordinal: QWK with the most probable level", f"{m['qwk_mode']:.3f}", "", None))
        table.append((f"{head}: pass F1 / ECE / Brier", passing, "", None))
    print_table(f"Heads, synthetic samples (15 % label noise, {seeds} seeds, held-out prompts), mean over axes", table)
    return out


# ---------------------------------------------------------------------------------------------- 3. GPU


def bench_gpu(batches: list[int], seq_len: int, iters: int, compile_model: bool) -> dict[str, Any]:
    from transformers import AutoModel

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs CUDA")
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = peak_tflops(name)
    torch.manual_seed(0)
    config = qwen3_0_6b_config()
    backbone = AutoModel.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")  # type: ignore[no-untyped-call]
    settings = ModelSettings(base_model="random:qwen3-0.6b")
    model = build_reward_model(settings, AXES_13, device=device, backbone=backbone)
    # Serving folds the adapter into the base weights (load_scoring_model(merge=True)).
    model.backbone = model.backbone.merge_and_unload()  # type: ignore[operator]
    model.eval()
    embedding = sum(p.numel() for n, p in model.backbone.named_parameters() if "embed_tokens" in n)
    total = sum(p.numel() for p in model.backbone.parameters()) + sum(p.numel() for p in model.head.parameters())
    matmul = total - embedding
    forward = torch.compile(model.predict) if compile_model else model.predict
    rows = []
    for batch in batches:
        ids = torch.randint(0, 151_000, (batch, seq_len), device=device)
        with torch.inference_mode():
            for _ in range(3):
                forward(ids, None)
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(iters):
                forward(ids, None)
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / iters
        tokens = batch * seq_len
        row = {
            "batch": batch,
            "samples_s": batch / seconds,
            "tokens_s": tokens / seconds,
            "tflops_matmul_params": 2 * matmul * tokens / seconds / 1e12,
            "tflops_all_params": 2 * total * tokens / seconds / 1e12,
        }
        if peak:
            row["mfu_matmul_params"] = row["tflops_matmul_params"] / peak
            row["mfu_all_params"] = row["tflops_all_params"] / peak
        rows.append(row)

    # End to end through the engine: concurrent callers, 1,024-token inputs given as token ids.
    scoring = ScoringModel(model, _NoTokenizer(), "bench", device)  # type: ignore[arg-type]
    model.settings = model.settings.model_copy(update={"max_length": seq_len})
    requests = [TokenIds(tuple(torch.randint(0, 151_000, (seq_len,)).tolist())) for _ in range(512)]

    async def through_engine() -> tuple[float, float]:
        budget = EngineSettings(max_batch_tokens=max(batches) * seq_len, max_batch_size=max(batches))
        engine = RewardEngine(scoring, budget)
        try:
            await asyncio.gather(*(engine.score([r]) for r in requests[:64]))
            started = time.perf_counter()
            await asyncio.gather(*(engine.score([r]) for r in requests))
            return time.perf_counter() - started, engine.stats.mean_batch_size
        finally:
            await engine.aclose()

    wall, mean_batch = asyncio.run(through_engine())
    engine_row = {"samples_s": len(requests) / wall, "mean_batch": mean_batch}
    engine_row["tflops_matmul_params"] = 2 * matmul * seq_len * engine_row["samples_s"] / 1e12
    if peak:
        engine_row["mfu_matmul_params"] = engine_row["tflops_matmul_params"] / peak
    best = max(rows, key=lambda r: r["samples_s"])
    table: list[tuple[str, Any, Any, Any]] = []
    for r in rows:
        flops = f"{r['tflops_matmul_params']:.0f} / {r['tflops_all_params']:.0f}"
        table.append((f"batch {r['batch']} x {seq_len}: samples/s", f"{r['samples_s']:.0f}", "", None))
        table.append((f"batch {r['batch']}: TFLOP/s (matmul / all params)", flops, "", None))
    engine_text = f"{engine_row['samples_s']:.0f} (mean batch {mean_batch:.0f})"
    table.append(("engine, 512 concurrent callers: samples/s", engine_text, "", None))
    if peak:
        mfu = best["mfu_matmul_params"]
        table.append(("best fraction of bf16 peak (matmul params)", f"{mfu:.1%}", ">= 40 %", mfu >= 0.4))
        table.append(("best fraction of bf16 peak (all params)", f"{best['mfu_all_params']:.1%}", "", None))
    print_table(f"GPU {name} (peak {peak} TFLOP/s bf16 dense), Qwen3-0.6B shape, random weights, bf16", table)
    return {
        "device": name,
        "peak_tflops": peak,
        "params_total": total,
        "params_matmul": matmul,
        "seq_len": seq_len,
        "compiled": compile_model,
        "forward": rows,
        "engine": engine_row,
    }


class _NoTokenizer:
    """The GPU benchmark feeds token ids; nothing is tokenized."""

    pad_token_id = 0
    eos_token_id = 0
    chat_template = None

    def get_vocab(self) -> dict[str, int]:
        return {}


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-heads", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="run the GPU benchmark only")
    parser.add_argument("--gpu-batches", default="8,16,32,64")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward (GPU)")
    args = parser.parse_args()

    results: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "at": time.time()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"reward_model-{'gpu' if args.gpu else 'cpu'}-{time.strftime('%Y%m%d-%H%M%S')}.json"

    def save() -> None:
        # After each part, so that a long run cut short keeps what it measured.
        path.write_text(json.dumps(results, indent=2), encoding="utf-8")

    if args.gpu:
        batches = [int(b) for b in args.gpu_batches.split(",")]
        results["gpu"] = bench_gpu(batches, args.seq_len, args.iters, args.compile)
        save()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_cpu:
                results["cpu"] = bench_cpu(args.callers, args.rounds, args.repeats, Path(tmp))
                save()
            if not args.skip_heads:
                results["heads"] = bench_heads(Path(tmp), args.seeds)
                save()
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
