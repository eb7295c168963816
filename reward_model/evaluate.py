"""Agreement of the reward model with its labels (a judge or human raters), per axis.

Quadratic-weighted kappa on integer scores, Spearman and MAE on expected scores, macro ("balanced") F1
of pass/fail, and calibration (ECE, Brier) of the pass probability. The integer prediction is the
one the judge backend reports (the expected score rounded half up).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from reward_model.data import Encoded, Example
from reward_model.scores import LEVELS, Scores, round_score

if TYPE_CHECKING:
    from reward_model.model import ScoringModel

Target = tuple[float, ...] | None


@dataclass(frozen=True)
class AxisMetrics:
    n: int
    qwk: float | None
    spearman: float | None
    mae: float | None
    pass_f1: float | None
    pass_rate_label: float | None
    pass_rate_model: float | None
    ece: float | None
    brier: float | None


@dataclass
class EvalReport:
    axes: dict[str, AxisMetrics]
    # The same metrics for "every axis passes" (the sample-level pass of the rubric).
    all_pass: AxisMetrics
    n_samples: int
    n_truncated: int
    summary: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A fixed-width table for the CLI and the benchmark."""
        head = f"{'axis':<28}{'n':>6}{'QWK':>8}{'Spear.':>8}{'MAE':>7}{'passF1':>8}{'ECE':>7}{'Brier':>7}"
        rows = [head, "-" * len(head)]
        for name, m in [*self.axes.items(), ("(all axes pass)", self.all_pass)]:
            rows.append(
                f"{name:<28}{m.n:>6}{_fmt(m.qwk):>8}{_fmt(m.spearman):>8}{_fmt(m.mae):>7}"
                f"{_fmt(m.pass_f1):>8}{_fmt(m.ece):>7}{_fmt(m.brier):>7}"
            )
        return "\n".join(rows)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def label_mean(target: Sequence[float]) -> float:
    return sum(level * p for level, p in zip(LEVELS, target, strict=True))


def label_passes(target: Sequence[float], threshold: float) -> bool:
    """Majority of the raters put the sample above the threshold (one rater: it is above)."""
    return sum(p for level, p in zip(LEVELS, target, strict=True) if level > threshold) > 0.5


def calibration(prob: Sequence[float], label: Sequence[int], bins: int = 10) -> tuple[float | None, float | None]:
    """Expected calibration error (equal-width bins) and Brier score of a probability."""
    if not prob:
        return None, None
    brier = sum((p - y) ** 2 for p, y in zip(prob, label, strict=True)) / len(prob)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, p in enumerate(prob) if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        if idx:
            conf = sum(prob[i] for i in idx) / len(idx)
            acc = sum(label[i] for i in idx) / len(idx)
            ece += len(idx) / len(prob) * abs(conf - acc)
    return ece, brier


def _metrics(
    pred_int: list[int],
    pred_exp: list[float],
    label_int: list[int],
    label_exp: list[float],
    pass_prob: list[float],
    pass_label: list[int],
    pass_pred: list[int],
) -> AxisMetrics:
    import warnings

    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score, f1_score

    n = len(pred_int)
    if n == 0:
        return AxisMetrics(0, None, None, None, None, None, None, None, None)
    with warnings.catch_warnings():
        # Constant inputs (e.g. one level in a tiny test set) make these undefined; they come out as None.
        warnings.simplefilter("ignore")
        qwk = _finite(cohen_kappa_score(label_int, pred_int, weights="quadratic", labels=list(LEVELS)))
        rho = _finite(spearmanr(pred_exp, label_exp).statistic) if n > 2 else None
        f1 = _finite(f1_score(pass_label, pass_pred, average="macro", labels=[0, 1], zero_division=0))
    ece, brier = calibration(pass_prob, pass_label)
    return AxisMetrics(
        n=n,
        qwk=qwk,
        spearman=rho,
        mae=sum(abs(p - t) for p, t in zip(pred_exp, label_exp, strict=True)) / n,
        pass_f1=f1,
        pass_rate_label=sum(pass_label) / n,
        pass_rate_model=sum(pass_pred) / n,
        ece=ece,
        brier=brier,
    )


def evaluate_predictions(
    predictions: Sequence[Scores],
    targets: Sequence[Sequence[Target]],
    thresholds: Mapping[str, float] | float = 4.0,
) -> EvalReport:
    """Metrics of ``predictions`` against per-axis label distributions (in the predictions' axis order)."""
    if len(predictions) != len(targets):
        raise ValueError("one target row per prediction")
    axis_keys = predictions[0].axis_keys if predictions else ()

    def threshold(axis: str) -> float:
        return thresholds if isinstance(thresholds, int | float) else thresholds.get(axis, 4.0)

    axes: dict[str, AxisMetrics] = {}
    # Per sample: product of axis pass probabilities (axes treated as independent), and the two pass flags.
    all_prob = [1.0] * len(predictions)
    all_label = [1] * len(predictions)
    all_pred = [1] * len(predictions)
    all_known = [True] * len(predictions)
    for a, axis in enumerate(axis_keys):
        cols: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        for i, (pred, row) in enumerate(zip(predictions, targets, strict=True)):
            target = row[a]
            if target is None:
                all_known[i] = False
                continue
            thr = threshold(axis)
            prob = pred.pass_probability(axis, thr)
            passes_label, passes_pred = int(label_passes(target, thr)), int(pred.level_of(axis) > thr)
            for col, value in zip(
                cols,
                (
                    pred.level_of(axis),
                    pred.expected_of(axis),
                    round_score(label_mean(target)),
                    label_mean(target),
                    prob,
                    passes_label,
                    passes_pred,
                ),
                strict=True,
            ):
                col.append(value)
            all_prob[i] *= prob
            all_label[i] &= passes_label
            all_pred[i] &= passes_pred
        axes[axis] = _metrics(*cols)
    keep = [i for i, known in enumerate(all_known) if known]
    probs = [all_prob[i] for i in keep]
    labels = [all_label[i] for i in keep]
    preds = [all_pred[i] for i in keep]
    all_pass = _all_pass_metrics(probs, labels, preds)
    summary = {f"mean_{name}": _mean([getattr(m, name) for m in axes.values()]) for name in ("qwk", "spearman", "mae")}
    summary["min_spearman"] = min((m.spearman for m in axes.values() if m.spearman is not None), default=None)
    return EvalReport(
        axes=axes,
        all_pass=all_pass,
        n_samples=len(predictions),
        n_truncated=sum(p.truncated for p in predictions),
        summary=summary,
    )


def _all_pass_metrics(prob: list[float], label: list[int], pred: list[int]) -> AxisMetrics:
    if not prob:
        return AxisMetrics(0, None, None, None, None, None, None, None, None)
    from sklearn.metrics import f1_score

    ece, brier = calibration(prob, label)
    return AxisMetrics(
        n=len(prob),
        qwk=None,
        spearman=None,
        mae=None,
        pass_f1=float(f1_score(label, pred, average="macro", labels=[0, 1], zero_division=0)),
        pass_rate_label=sum(label) / len(label),
        pass_rate_model=sum(pred) / len(pred),
        ece=ece,
        brier=brier,
    )


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def predict_examples(scoring: ScoringModel, examples: Sequence[Example], batch_size: int = 32) -> list[Scores]:
    """Scores for already-tokenized examples, in their order."""
    import torch

    scoring.model.eval()
    # Similar lengths together (less padding); results go back to the input order.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    out: list[Scores | None] = [None] * len(examples)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            encoded = [Encoded(examples[i].input_ids, examples[i].truncated, len(examples[i].input_ids)) for i in part]
            for i, scores in zip(part, scoring.score_encoded(encoded), strict=True):
                out[i] = scores
    return [s for s in out if s is not None]


def evaluate_model(
    scoring: ScoringModel,
    examples: Sequence[Example],
    thresholds: Mapping[str, float] | float = 4.0,
    *,
    batch_size: int = 32,
) -> EvalReport:
    """Score ``examples`` with the model and compare with their labels."""
    predictions = predict_examples(scoring, examples, batch_size)
    return evaluate_predictions(predictions, [e.targets for e in examples], thresholds)
