"""The local reward model: Qwen backbone + LoRA + per-axis head. torch/transformers/peft load lazily."""
