"""Tiny, offline stand-ins for a Qwen checkpoint: a byte-level BPE tokenizer trained in a second on
synthetic text (with a Qwen-style chat template) and a 2-layer Qwen3 config. Also the Qwen3-0.6B shape
for benchmarks with random weights. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reward_model.synthetic import synthetic_corpus

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast, Qwen3Config

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")

# ChatML as the Qwen family writes it; an assistant turn carries its own <think> block in the content.
QWEN_STYLE_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def train_tiny_tokenizer(vocab_size: int = 768, corpus: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (like Qwen's) trained on synthetic Chinese/English text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus if corpus is not None else synthetic_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    wrapped.chat_template = QWEN_STYLE_TEMPLATE
    return wrapped


def tiny_qwen3_config(vocab_size: int, *, hidden_size: int = 64, layers: int = 2) -> Qwen3Config:
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=0,
    )


def qwen3_0_6b_config() -> Qwen3Config:
    """The shape of Qwen3-0.6B (28 layers, hidden 1024, GQA 16/8, head_dim 128, vocab 151,936)."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    )


def save_tiny_base(out_dir: Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """Write a random-weight tiny Qwen3 base and its tokenizer to ``out_dir`` (a local "checkpoint")."""
    import torch
    from transformers import AutoModel

    tokenizer = train_tiny_tokenizer()
    config = tiny_qwen3_config(len(tokenizer), hidden_size=hidden_size, layers=layers)
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = AutoModel.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
