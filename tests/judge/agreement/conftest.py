"""Fixtures of the agreement tests: a prmed-shaped rubric and synthetic ratings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from rubrics.schema import Rubric

AXES: tuple[tuple[str, str, str, str], ...] = (
    ("cot", "emotion_perception", "情绪感知", "Emotion perception"),
    ("cot", "perturbation_identification", "扰动识别", "Perturbation identification"),
    ("cot", "utterance_correction", "话语纠正", "Utterance correction"),
    ("cot", "chief_complaint_extraction", "主诉提取", "Chief complaint extraction"),
    ("cot", "medical_reasoning", "医学推理", "Medical reasoning"),
    ("response", "medical_accuracy", "医学准确性", "Medical accuracy"),
    ("response", "safety", "安全性", "Safety"),
    ("response", "completeness", "完整性", "Completeness"),
    ("response", "actionability", "可操作性", "Actionability"),
    ("response", "communication", "沟通表达", "Communication"),
    ("cross", "consistency", "前后一致", "Consistency"),
    ("cross", "faithful_transfer", "忠实传递", "Faithful transfer"),
    ("cross", "tone_alignment", "语气一致", "Tone alignment"),
)


def make_rubric(n_axes: int = len(AXES), *, threshold: float = 4.0, per_axis: dict[str, float] | None = None) -> Rubric:
    def text(zh: str, en: str) -> dict[str, str]:
        return {"zh": zh, "en": en}

    axes = AXES[:n_axes]
    layers = sorted({layer for layer, *_ in axes})
    return Rubric.model_validate(
        {
            "name": "prmed-test",
            "version": 1,
            "description": text("测试量表", "test rubric"),
            "layers": [{"key": layer, "title": text(layer, layer)} for layer in layers],
            "axes": [
                {
                    "key": key,
                    "layer": layer,
                    "title": text(zh, en),
                    "description": text(zh, en),
                    "anchors": {level: text(f"{level} 分", f"level {level}") for level in range(1, 6)},
                }
                for layer, key, zh, en in axes
            ],
            "pass_policy": {"threshold": threshold, "per_axis": per_axis or {}},
        }
    )


@pytest.fixture(scope="session")
def rubric() -> Rubric:
    return make_rubric()


@dataclass(frozen=True)
class Row:
    sample_hash: str
    rater: str
    axis: str
    score: float
    run: int = 0


def synthetic_scores(
    n_samples: int,
    raters: int,
    axes: int,
    *,
    noise: float = 0.7,
    missing: float = 0.2,
    seed: int = 0,
    bias: tuple[float, ...] | None = None,
) -> np.ndarray:
    """axes × samples × raters Likert scores: a latent quality plus rater noise (and bias), NaN where missing."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(3.3, 1.0, (axes, n_samples, 1))
    offsets = np.asarray(bias if bias is not None else (0.0,) * raters)[None, None, :]
    scores = np.clip(np.rint(truth + offsets + rng.normal(0, noise, (axes, n_samples, raters))), 1, 5)
    scores[rng.random(scores.shape) < missing] = np.nan
    return scores


def to_rows(scores: np.ndarray, rubric: Rubric, raters: list[str], run: int = 0) -> list[Row]:
    keys = rubric.axis_keys
    rows = []
    for a, s, r in zip(*np.nonzero(~np.isnan(scores)), strict=True):
        rows.append(Row(f"{s:064x}", raters[r], keys[a], float(scores[a, s, r]), run))
    return rows
