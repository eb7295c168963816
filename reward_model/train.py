"""Training loop: AdamW, cosine schedule with warm-up, gradient accumulation, early stopping on validation loss."""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from reward_model.config import TrainSettings
from reward_model.data import Example
from reward_model.model import N_LEVELS, RewardModel, pad_batch

LogFn = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float | None = None
    best_step: int = 0
    steps: int = 0
    stopped_early: bool = False
    first_train_loss: float | None = None
    last_train_loss: float | None = None
    seconds: float = 0.0


def collate(
    examples: Sequence[Example], n_axes: int, pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Padded ids, mask, per-axis level distributions ``(batch, axes, 5)`` and the label mask ``(batch, axes)``."""
    ids, mask = pad_batch([e.input_ids for e in examples], pad_id, device)
    dist = torch.zeros((len(examples), n_axes, N_LEVELS))
    present = torch.zeros((len(examples), n_axes))
    for row, example in enumerate(examples):
        for axis, target in enumerate(example.targets):
            if target is not None:
                dist[row, axis] = torch.tensor(target)
                present[row, axis] = 1.0
    return ids, mask, dist.to(device), present.to(device)


def length_grouped_batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffled batches of similar lengths (less padding), in random order."""
    order = list(examples)
    rng.shuffle(order)
    pool = batch_size * 32
    batches: list[list[Example]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda e: len(e.input_ids))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def in_batches(examples: Sequence[Example], batch_size: int) -> Iterator[list[Example]]:
    order = sorted(examples, key=lambda e: len(e.input_ids))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def uses_bf16(settings: TrainSettings, device: torch.device) -> bool:
    return settings.precision == "bf16" or (settings.precision == "auto" and device.type == "cuda")


def _autocast(enabled: bool, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def model_device(model: RewardModel) -> torch.device:
    return next(model.parameters()).device


def validation_loss(
    model: RewardModel, examples: Sequence[Example], *, batch_size: int, pad_id: int, bf16: bool = False
) -> float:
    """Mean loss per labelled axis over ``examples``."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    total, weight = 0.0, 0.0
    with torch.no_grad():
        for batch in in_batches(examples, batch_size):
            ids, mask, dist, present = collate(batch, len(model.axis_keys), pad_id, device)
            with _autocast(bf16, device):
                raw = model(ids, mask)
            n = float(present.sum())
            total += float(model.loss(raw.float(), dist, present)) * n
            weight += n
    model.train(was_training)
    return total / weight if weight else math.nan


def train(
    model: RewardModel,
    train_examples: Sequence[Example],
    val_examples: Sequence[Example],
    settings: TrainSettings,
    *,
    pad_id: int,
    on_log: LogFn | None = None,
) -> TrainResult:
    """Fit the LoRA adapter and head; returns with the weights of the best validation loss restored."""
    if not train_examples:
        raise ValueError("no training examples")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    device = model_device(model)
    bf16 = uses_bf16(settings, device)
    n_axes = len(model.axis_keys)
    params = model.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    batches_per_epoch = math.ceil(len(train_examples) / settings.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / settings.grad_accum_steps)
    total_steps = steps_per_epoch * settings.epochs
    from transformers import get_cosine_schedule_with_warmup

    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(settings.warmup_ratio * total_steps), total_steps)

    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    evals_without_gain = 0
    window: list[float] = []

    def evaluate(epoch: int) -> bool:
        """Log, track the best weights; True when patience has run out."""
        nonlocal best_state, evals_without_gain
        train_loss = sum(window) / len(window) if window else math.nan
        window.clear()
        if result.first_train_loss is None:
            result.first_train_loss = train_loss
        result.last_train_loss = train_loss
        entry: dict[str, Any] = {
            "step": result.steps,
            "epoch": epoch,
            "train_loss": train_loss,
            "lr": scheduler.get_last_lr()[0],
        }
        if val_examples:
            val = validation_loss(model, val_examples, batch_size=settings.batch_size, pad_id=pad_id, bf16=bf16)
            entry["val_loss"] = val
            if result.best_val_loss is None or val < result.best_val_loss:
                result.best_val_loss, result.best_step, evals_without_gain = val, result.steps, 0
                best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            else:
                evals_without_gain += 1
        result.history.append(entry)
        if on_log is not None:
            on_log(entry)
        return bool(val_examples) and evals_without_gain >= settings.patience

    model.train()
    stop = False
    for epoch in range(settings.epochs):
        batches = length_grouped_batches(train_examples, settings.batch_size, rng)
        optimizer.zero_grad(set_to_none=True)
        for index, batch in enumerate(batches):
            ids, mask, dist, present = collate(batch, n_axes, pad_id, device)
            with _autocast(bf16, device):
                raw = model(ids, mask)
            loss = model.loss(raw.float(), dist, present)
            # Accumulated micro-batches each carry 1/k of the step; the last group of an epoch may be shorter.
            group_start = index - index % settings.grad_accum_steps
            group_size = min(settings.grad_accum_steps, len(batches) - group_start)
            (loss / group_size).backward()  # type: ignore[no-untyped-call]
            window.append(float(loss.detach()))
            if index - group_start + 1 < group_size:
                continue
            if settings.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps += 1
            if settings.eval_every_steps is not None and result.steps % settings.eval_every_steps == 0:
                stop = evaluate(epoch)
                if stop:
                    break
        if stop:
            result.stopped_early = True
            break
        if settings.eval_every_steps is None or window:
            stop = evaluate(epoch)
            if stop:
                result.stopped_early = True
                break
    if best_state is not None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in best_state:
                    param.copy_(best_state[name])
    model.eval()
    result.seconds = time.perf_counter() - started
    return result
