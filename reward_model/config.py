"""Configuration of the reward model: LoRA, head, input length, training and data split."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

HeadKind = Literal["ordinal", "regression"]

# PrMed's LoRA targets: every projection of attention and MLP.
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraSettings(_Frozen):
    """LoRA adapter settings (defaults after PrMed)."""

    r: Annotated[int, Field(ge=1)] = 16
    alpha: Annotated[int, Field(ge=1)] = 32
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES


class ModelSettings(_Frozen):
    """What the scoring model is: base, adapter, head and how inputs are cut."""

    base_model: str
    head: HeadKind = "ordinal"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    # Longer inputs lose the start of their context, never the end of the response.
    max_length: Annotated[int, Field(ge=16)] = 4096


class SplitSettings(_Frozen):
    """Prompt-grouped split; a prompt's split depends only on its hash and the seed, so it is stable as data grows."""

    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    seed: int = 0


class TrainSettings(_Frozen):
    """Optimiser and schedule: AdamW, cosine with warm-up, early stopping on validation loss."""

    learning_rate: Annotated[float, Field(gt=0)] = 5e-5
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    epochs: Annotated[int, Field(ge=1)] = 3
    batch_size: Annotated[int, Field(ge=1)] = 8
    grad_accum_steps: Annotated[int, Field(ge=1)] = 1
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.03
    max_grad_norm: Annotated[float, Field(gt=0)] | None = 1.0
    # Validation every this many optimiser steps; None means once per epoch.
    eval_every_steps: Annotated[int, Field(ge=1)] | None = None
    # Evaluations without a new best validation loss before stopping.
    patience: Annotated[int, Field(ge=1)] = 3
    # "auto": bf16 autocast on CUDA, fp32 elsewhere.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    seed: int = 0
