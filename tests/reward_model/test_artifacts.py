"""Save -> load gives the same model; the metadata describes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reward_model.artifacts import load_scoring_model, read_metadata
from reward_model.data import LabelledRecord
from reward_model.errors import InvalidArtifact
from reward_model.model import ScoringModel
from reward_model.pipeline import TrainingRun, evaluate_artifact
from rubrics.schema import Rubric

from .support import AXES, MAX_LENGTH, TEST_TRAIN


def test_metadata_records_what_is_needed_to_rebuild_and_register(artifact_dir: Path, rubric: Rubric) -> None:
    meta = read_metadata(artifact_dir)
    assert meta.rubric_hash == rubric.content_hash and meta.rubric_ref == "rm-test@1"
    assert meta.axis_keys == list(AXES)
    assert meta.model.head == "ordinal" and meta.model.max_length == MAX_LENGTH
    assert meta.model.lora.r == 16 and meta.model.lora.alpha == 32 and meta.model.lora.dropout == 0.05
    assert meta.chat_template and "<|im_start|>" in meta.chat_template
    assert meta.train == TEST_TRAIN
    assert len(meta.artifact_id) == 64
    assert meta.data["judges"] == ["synthetic"] and meta.data["splits"]["test"] > 0
    assert meta.metrics["test"]["summary"]["min_spearman"] > 0.8
    for name in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "head.safetensors"):
        assert (artifact_dir / name).is_file()


def test_save_then_load_gives_identical_outputs(
    trained_run: TrainingRun, artifact_dir: Path, scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    again = load_scoring_model(artifact_dir, device="cpu")
    convs = [r.conversation for r in records[:10]]
    first, second = scoring.score(convs), again.score(convs)
    for a, b in zip(first, second, strict=True):
        assert a.expected == b.expected and a.probs == b.probs
    assert scoring.version == again.version == trained_run.metadata.artifact_id


def test_merged_adapter_scores_the_same_up_to_rounding(
    artifact_dir: Path, scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    merged = load_scoring_model(artifact_dir, device="cpu", merge=True)
    convs = [r.conversation for r in records[:6]]
    for a, b in zip(scoring.score(convs), merged.score(convs), strict=True):
        assert max(abs(x - y) for x, y in zip(a.expected, b.expected, strict=True)) < 1e-4


def test_re_evaluation_on_the_recorded_test_split_matches_training(
    trained_run: TrainingRun, artifact_dir: Path, records: list[LabelledRecord]
) -> None:
    report = evaluate_artifact(artifact_dir, records, device="cpu")
    assert trained_run.test_report is not None
    assert report.n_samples == trained_run.test_report.n_samples
    assert report.summary["mean_spearman"] == pytest.approx(trained_run.test_report.summary["mean_spearman"], abs=1e-6)


def test_broken_directory_is_reported(tmp_path: Path, artifact_dir: Path) -> None:
    with pytest.raises(InvalidArtifact):
        load_scoring_model(tmp_path, device="cpu")
    (tmp_path / "metadata.json").write_text(json.dumps({"format": "x"}), encoding="utf-8")
    with pytest.raises(InvalidArtifact):
        read_metadata(tmp_path)
    assert torch.get_default_dtype() == torch.float32
