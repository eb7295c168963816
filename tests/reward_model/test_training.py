"""Training on synthetic verdicts: the loss falls and held-out agreement is high, for both heads."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from reward_model.config import ModelSettings, TrainSettings
from reward_model.data import LabelledRecord, build_examples, split_by_prompt
from reward_model.evaluate import evaluate_model
from reward_model.model import ScoringModel, build_reward_model
from reward_model.pipeline import TrainingRun
from reward_model.train import train

from .support import AXES, MAX_LENGTH, TEST_SPLIT, TEST_TRAIN


def test_ordinal_model_learns_the_axis_features(trained_run: TrainingRun) -> None:
    result, report = trained_run.result, trained_run.test_report
    assert result.first_train_loss is not None and result.last_train_loss is not None
    assert result.last_train_loss < 0.7 * result.first_train_loss
    assert result.best_val_loss is not None and result.best_val_loss < result.history[0]["val_loss"]
    assert report is not None and report.n_samples >= 40
    for axis, metrics in report.axes.items():
        assert metrics.spearman is not None and metrics.spearman > 0.8, (axis, metrics)
        assert metrics.qwk is not None and metrics.qwk > 0.7, (axis, metrics)
    assert trained_run.splits["val"] > 0 and trained_run.splits["test"] > 0


def test_regression_head_trains_too(tiny_base: Path, records: list[LabelledRecord]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    splits = split_by_prompt(build_examples(records, tokenizer, AXES, MAX_LENGTH), TEST_SPLIT)
    torch.manual_seed(0)
    model = build_reward_model(
        ModelSettings(base_model=str(tiny_base), head="regression", max_length=MAX_LENGTH), AXES, device="cpu"
    )
    result = train(model, splits.train, splits.val, TEST_TRAIN, pad_id=tokenizer.pad_token_id)
    assert result.last_train_loss is not None and result.first_train_loss is not None
    assert result.last_train_loss < 0.5 * result.first_train_loss
    report = evaluate_model(ScoringModel(model, tokenizer, "regression", torch.device("cpu")), splits.test)
    for axis, metrics in report.axes.items():
        assert metrics.spearman is not None and metrics.spearman > 0.8, (axis, metrics)
    # No level probabilities from a regression head: the pass probability is a hard 0/1.
    assert all(m.ece is not None for m in report.axes.values())


def test_early_stopping_and_gradient_accumulation(tiny_base: Path, records: list[LabelledRecord]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    examples = build_examples(records[:96], tokenizer, AXES, MAX_LENGTH)
    model = build_reward_model(ModelSettings(base_model=str(tiny_base), max_length=MAX_LENGTH), AXES, device="cpu")
    # A learning rate far too high makes validation loss stop improving: training must stop and restore the best.
    settings = TrainSettings(
        learning_rate=0.5, epochs=30, batch_size=8, grad_accum_steps=2, patience=2, eval_every_steps=3
    )
    result = train(model, examples[:64], examples[64:], settings, pad_id=tokenizer.pad_token_id)
    assert result.stopped_early
    assert result.steps < 30 * 4
    assert result.best_step <= result.steps
