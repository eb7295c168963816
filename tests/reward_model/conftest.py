"""Fixtures of the reward-model tests: a tiny Qwen3 base with a tokenizer trained here, synthetic judged
samples, and one model trained once per run (everything on CPU, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from reward_model.artifacts import load_scoring_model  # noqa: E402
from reward_model.config import ModelSettings  # noqa: E402
from reward_model.data import LabelledRecord  # noqa: E402
from reward_model.model import ScoringModel  # noqa: E402
from reward_model.pipeline import TrainingRun, train_from_records  # noqa: E402
from reward_model.synthetic import synthetic_records  # noqa: E402
from reward_model.tiny import save_tiny_base  # noqa: E402
from rubrics.schema import Rubric  # noqa: E402

from .support import AXES, MAX_LENGTH, TEST_SPLIT, TEST_TRAIN, make_rubric  # noqa: E402


@pytest.fixture(scope="session")
def rubric() -> Rubric:
    return make_rubric()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 2-layer Qwen3 (hidden 64) and a byte-level BPE tokenizer trained on synthetic text."""
    return save_tiny_base(tmp_path_factory.mktemp("tiny-qwen3"), seed=0)


@pytest.fixture(scope="session")
def records() -> list[LabelledRecord]:
    """Judged samples whose axis scores are the counts of per-axis marker words (learnable from the text)."""
    return synthetic_records(AXES, n_prompts=120, rollouts=4, seed=0)


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, records: list[LabelledRecord], rubric: Rubric
) -> tuple[TrainingRun, Path]:
    """One ordinal model trained, evaluated on held-out prompts and saved; shared by the tests."""
    out = tmp_path_factory.mktemp("rm-ordinal")
    run = train_from_records(
        records,
        out_dir=out,
        rubric_ref=rubric.ref,
        rubric_hash=rubric.content_hash,
        axis_keys=AXES,
        model=ModelSettings(base_model=str(tiny_base), head="ordinal", max_length=MAX_LENGTH),
        train=TEST_TRAIN,
        split=TEST_SPLIT,
        data_info={"judges": ["synthetic"]},
        device="cpu",
    )
    return run, out


@pytest.fixture(scope="session")
def trained_run(trained: tuple[TrainingRun, Path]) -> TrainingRun:
    return trained[0]


@pytest.fixture(scope="session")
def artifact_dir(trained: tuple[TrainingRun, Path]) -> Path:
    return trained[1]


@pytest.fixture(scope="session")
def scoring(artifact_dir: Path) -> ScoringModel:
    """The saved model loaded back for inference (fp32, CPU)."""
    return load_scoring_model(artifact_dir, device="cpu")
