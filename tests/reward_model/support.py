"""Constants and builders shared by the reward-model tests."""

from __future__ import annotations

from reward_model.config import SplitSettings, TrainSettings
from rubrics.schema import Rubric

AXES = ("emotion_perception", "safety", "consistency")
MAX_LENGTH = 256
# Learning rate and epochs sized for a random 2-layer base; the defaults (5e-5, 3 epochs) are for real checkpoints.
TEST_TRAIN = TrainSettings(learning_rate=3e-3, epochs=8, batch_size=16, patience=3)
TEST_SPLIT = SplitSettings(val_fraction=0.15, test_fraction=0.15, seed=0)


def _text(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


def make_rubric(axes: tuple[str, ...] = AXES, version: int = 1) -> Rubric:
    return Rubric.model_validate(
        {
            "name": "rm-test",
            "version": version,
            "description": _text("测试", "test"),
            "layers": [{"key": "all", "title": _text("全部", "all")}],
            "axes": [
                {
                    "key": key,
                    "layer": "all",
                    "title": _text(key, key),
                    "description": _text(key, key),
                    "anchors": {level: _text(f"{level}分", f"level {level}") for level in range(1, 6)},
                }
                for key in axes
            ],
        }
    )
