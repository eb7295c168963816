"""End to end, for the CLI and the API: labelled records -> trained, evaluated, saved model; and re-evaluation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reward_model.artifacts import ArtifactMetadata, load_scoring_model, read_metadata, save_artifact
from reward_model.config import ModelSettings, SplitSettings, TrainSettings
from reward_model.data import LabelledRecord, build_examples, merge_ratings, split_by_prompt
from reward_model.errors import InvalidTrainingData
from reward_model.evaluate import EvalReport, evaluate_model

if TYPE_CHECKING:
    import torch

    from reward_model.train import LogFn, TrainResult


@dataclass
class TrainingRun:
    metadata: ArtifactMetadata
    result: TrainResult
    # Metrics on the held-out test prompts (None when the test split is empty).
    test_report: EvalReport | None
    splits: dict[str, int]


def train_from_records(
    records: Sequence[LabelledRecord],
    *,
    out_dir: Path,
    rubric_ref: str,
    rubric_hash: str,
    axis_keys: Sequence[str],
    model: ModelSettings,
    train: TrainSettings | None = None,
    split: SplitSettings | None = None,
    thresholds: Mapping[str, float] | float = 4.0,
    data_info: Mapping[str, Any] | None = None,
    device: torch.device | str | None = None,
    on_log: LogFn | None = None,
) -> TrainingRun:
    """Render, split by prompt, train, evaluate on the test prompts and save to ``out_dir``.

    ``records`` may hold several ratings of one sample (several judges): they are pooled into soft labels.
    ``thresholds`` are the rubric's pass thresholds per axis (``rubric.pass_policy.threshold_for``).
    """
    import torch
    from transformers import AutoTokenizer

    from reward_model.model import ScoringModel, build_reward_model
    from reward_model.train import train as fit

    train = train or TrainSettings()
    split = split or SplitSettings()
    tokenizer = AutoTokenizer.from_pretrained(model.base_model)
    examples = build_examples(merge_ratings(records), tokenizer, axis_keys, model.max_length)
    splits = split_by_prompt(examples, split)
    if not splits.train:
        raise InvalidTrainingData(f"no training examples among {len(records)} records", field="data")
    torch.manual_seed(train.seed)
    network = build_reward_model(model, axis_keys, device=device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    result = fit(network, splits.train, splits.val, train, pad_id=pad_id, on_log=on_log)
    scoring = ScoringModel(network, tokenizer, version="unsaved", device=next(network.parameters()).device)
    report = evaluate_model(scoring, splits.test, thresholds) if splits.test else None
    metrics: dict[str, Any] = {
        "best_val_loss": result.best_val_loss,
        "first_train_loss": result.first_train_loss,
        "last_train_loss": result.last_train_loss,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
    }
    if report is not None:
        metrics["test"] = report.to_dict()
    data: dict[str, Any] = dict(data_info or {})
    data.update(
        {
            "records": len(records),
            "examples": len(examples),
            "splits": splits.sizes(),
            "truncated": sum(e.truncated for e in examples),
        }
    )
    metadata = save_artifact(
        network,
        tokenizer,
        out_dir,
        rubric_ref=rubric_ref,
        rubric_hash=rubric_hash,
        train=train,
        split=split,
        data=data,
        metrics=metrics,
    )
    return TrainingRun(metadata=metadata, result=result, test_report=report, splits=splits.sizes())


def evaluate_artifact(
    path: Path,
    records: Sequence[LabelledRecord],
    thresholds: Mapping[str, float] | float = 4.0,
    *,
    test_split_only: bool = True,
    device: torch.device | str | None = None,
    batch_size: int = 32,
) -> EvalReport:
    """Agreement of a saved model with ``records``; by default only on prompts of its recorded test split."""
    from reward_model.data import split_of

    metadata = read_metadata(path)
    scoring = load_scoring_model(path, device=device)
    examples = build_examples(merge_ratings(records), scoring.tokenizer, metadata.axis_keys, metadata.model.max_length)
    if test_split_only and metadata.split is not None:
        examples = [e for e in examples if split_of(e.group, metadata.split) == "test"]
    if not examples:
        raise InvalidTrainingData("no labelled examples to evaluate on", field="data")
    return evaluate_model(scoring, examples, thresholds, batch_size=batch_size)
