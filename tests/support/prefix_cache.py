"""What a provider's prefix cache would have seen, and token counting: the loopback judge's ``usage`` numbers.

Like a provider's (DeepSeek, OpenAI, vLLM/SGLang prefix caching), the cache remembers prompts in blocks of
``PREFIX_BLOCK_CHARS`` characters; tokens are counted as characters / 2, or by a real tokenizer."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from tests.support.chat_request import ChatRequest

# The prefix cache's granularity (64 "tokens" of 2 characters; DeepSeek caches in 64-token units) and size.
PREFIX_BLOCK_CHARS = 128
PREFIX_CACHE_BLOCKS = 200_000


class PrefixCache:
    """Which prompt prefixes were seen before, in blocks: a provider's prefix cache, as far as billing shows it."""

    def __init__(self, block_chars: int = PREFIX_BLOCK_CHARS, max_blocks: int = PREFIX_CACHE_BLOCKS) -> None:
        self.block_chars = block_chars
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen_chars(self, text: str) -> int:
        """Characters at the start of ``text`` already cached (whole blocks); then caches all of ``text``'s blocks."""
        digest = hashlib.blake2b(digest_size=16)
        keys = []
        for start in range(0, len(text) - self.block_chars + 1, self.block_chars):
            digest.update(text[start : start + self.block_chars].encode())
            keys.append(digest.copy().digest())
        hit = 0
        with self._lock:
            for key in keys:
                if key not in self._blocks:
                    break
                hit += 1
            for key in keys:
                self._blocks[key] = None
                self._blocks.move_to_end(key)
            while len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)
        return hit * self.block_chars

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()


def cache_text(request: ChatRequest) -> str:
    """The prompt as a chat template lays it out (roles and contents in order): what a prefix cache sees."""
    return "".join(f"<|{m.get('role')}|>{m.get('content') or ''}" for m in request.messages if isinstance(m, dict))


def half_chars(text: str) -> int:
    """Tokens as characters / 2 (no tokenizer given): a rough mean over Chinese and English text."""
    return len(text) // 2


def tokenizer_counter(path: str) -> Callable[[str], int]:
    """Token counts from a Hugging Face ``tokenizer.json`` (the ``tokenizers`` library, offline)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)
