"""Saved models: LoRA adapter + head + tokenizer + metadata in one directory.

Layout::

    DIR/metadata.json        rubric ref and hash, axis keys, base model, chat template, settings, metrics
    DIR/adapter/             peft adapter (adapter_config.json, adapter_model.safetensors)
    DIR/head.safetensors     per-axis head
    DIR/tokenizer/           the tokenizer the model was trained with (its chat template included)

The base model's weights are not copied: ``base_model`` names them. ``artifact_id`` is a digest of
the weights and the metadata, so two saves of the same model share it (the registry's version key).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reward_model.config import ModelSettings, SplitSettings, TrainSettings
from reward_model.errors import InvalidArtifact

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from reward_model.model import RewardModel, ScoringModel

FORMAT = "rubric-judge-rm/1"
METADATA_FILE = "metadata.json"
HEAD_FILE = "head.safetensors"
ADAPTER_DIR = "adapter"
TOKENIZER_DIR = "tokenizer"


class ArtifactMetadata(BaseModel):
    """Everything needed to rebuild and to register a trained reward model."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    artifact_id: str = ""
    rubric_ref: str
    rubric_hash: str
    axis_keys: list[str]
    model: ModelSettings
    chat_template: str | None = None
    train: TrainSettings | None = None
    split: SplitSettings | None = None
    # Where the labels came from, e.g. {"judges": ["gpt-judge"], "jsonl": null, "examples": {...}}.
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)

    @property
    def base_model(self) -> str:
        return self.model.base_model


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def _digest(paths: list[Path], metadata: ArtifactMetadata) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    identity = metadata.model_dump(mode="json", exclude={"artifact_id", "created_at", "metrics", "versions"})
    h.update(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


def save_artifact(
    model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    *,
    rubric_ref: str,
    rubric_hash: str,
    train: TrainSettings | None = None,
    split: SplitSettings | None = None,
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> ArtifactMetadata:
    """Write adapter, head, tokenizer and metadata to ``out_dir``; returns the metadata (with ``artifact_id``)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(out_dir / ADAPTER_DIR)  # type: ignore[operator]
    save_file(
        {k: v.detach().float().cpu().contiguous() for k, v in model.head.state_dict().items()}, out_dir / HEAD_FILE
    )
    tokenizer.save_pretrained(out_dir / TOKENIZER_DIR)
    metadata = ArtifactMetadata(
        rubric_ref=rubric_ref,
        rubric_hash=rubric_hash,
        axis_keys=list(model.axis_keys),
        model=model.settings,
        chat_template=getattr(tokenizer, "chat_template", None),
        train=train,
        split=split,
        data=data or {},
        metrics=metrics or {},
        versions=_versions(),
    )
    weights = sorted((out_dir / ADAPTER_DIR).glob("*.safetensors")) + [out_dir / HEAD_FILE]
    metadata.artifact_id = _digest(weights, metadata)
    (out_dir / METADATA_FILE).write_text(metadata.model_dump_json(indent=2), encoding="utf-8")
    return metadata


def read_metadata(path: Path) -> ArtifactMetadata:
    try:
        return ArtifactMetadata.model_validate_json((path / METADATA_FILE).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidArtifact(f"{path} is not a reward-model directory: {exc}", field="path") from exc
    except ValidationError as exc:
        raise InvalidArtifact(f"invalid metadata in {path}: {exc}", field="path") from exc


def load_scoring_model(
    path: Path,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    base_model: str | None = None,
    merge: bool = False,
) -> ScoringModel:
    """Rebuild a saved model for inference (eval mode).

    ``base_model`` overrides the recorded base path (same weights moved elsewhere). ``merge`` folds the
    LoRA weights into the base for faster inference; outputs then differ from the unmerged model by
    rounding only.
    """
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from reward_model.model import (
        RewardModel,
        ScoringModel,
        default_device,
        default_dtype,
        hidden_size_of,
        load_backbone,
        make_head,
        quiet_peft,
    )

    metadata = read_metadata(path)
    if metadata.format != FORMAT:
        raise InvalidArtifact(f"{path}: unknown format {metadata.format!r}, expected {FORMAT!r}", field="path")
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    settings = metadata.model if base_model is None else metadata.model.model_copy(update={"base_model": base_model})
    base = load_backbone(settings.base_model, dtype)
    with quiet_peft():
        backbone: torch.nn.Module = PeftModel.from_pretrained(base, str(path / ADAPTER_DIR), is_trainable=False)
    if merge:
        backbone = backbone.merge_and_unload()  # type: ignore[operator]
    head = make_head(settings.head, hidden_size_of(base), len(metadata.axis_keys))
    try:
        head.load_state_dict(load_file(path / HEAD_FILE))
    except (OSError, RuntimeError) as exc:
        raise InvalidArtifact(f"{path}: head does not fit the model: {exc}", field="path") from exc
    model = RewardModel(backbone, head, metadata.axis_keys, settings).to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path / TOKENIZER_DIR))
    return ScoringModel(
        model=model,
        tokenizer=tokenizer,
        version=metadata.artifact_id,
        device=device,
        rubric_ref=metadata.rubric_ref,
        rubric_hash=metadata.rubric_hash,
    )
