"""Inference engine with dynamic batching.

Callers on an asyncio loop ``await engine.score(items)``. Inputs are tokenized in the caller, queued,
and one worker thread gathers whatever is queued (waiting at most ``max_wait_ms`` after the oldest
request when it was idle), sorts it by length and packs it into batches under a padded-token budget.
Each batch runs under ``torch.inference_mode()``; its results go back to each caller's loop with
``call_soon_threadsafe`` on a future, so nobody polls. ``swap`` replaces the model between batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reward_model.data import Conversation, Encoded, ModelInput
from reward_model.errors import EngineClosed, IncompatibleModel
from reward_model.scores import Scores

if TYPE_CHECKING:
    from reward_model.model import ScoringModel


# Characters of input above which tokenizing moves off the event loop.
OFFLOAD_CHARS = 50_000
# Most batches' worth of queued work the worker takes in one round.
ROUND_BATCHES = 4


def _chars(item: ModelInput) -> int:
    if isinstance(item, str):
        return len(item)
    if isinstance(item, Conversation):
        return len(item.reasoning) + len(item.response) + sum(len(content) for _, content in item.messages)
    return 0


@dataclass(frozen=True)
class EngineSettings:
    # Padded tokens per forward (rows x longest row): bounds activation memory whatever the lengths.
    max_batch_tokens: int = 32_768
    max_batch_size: int = 128
    # How long an idle worker waits for company after the first request arrives.
    max_wait_ms: float = 2.0


@dataclass
class EngineStats:
    requests: int = 0
    items: int = 0
    forwards: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    largest_batch: int = 0
    errors: int = 0
    swaps: int = 0
    forward_seconds: float = 0.0
    queue_seconds: float = 0.0
    # Forwards per batch size.
    batch_sizes: Counter[int] = field(default_factory=Counter)

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.forwards if self.forwards else 0.0


@dataclass(eq=False)
class _Pending:
    encoded: Encoded
    future: asyncio.Future[Scores]
    loop: asyncio.AbstractEventLoop
    enqueued: float


def _resolve(future: asyncio.Future[Scores], value: Scores | BaseException) -> None:
    # Runs on the caller's loop; the caller may have given up (cancelled) meanwhile.
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


class RewardEngine:
    """Dynamic-batching scorer around one :class:`~reward_model.model.ScoringModel`."""

    def __init__(self, model: ScoringModel, settings: EngineSettings | None = None, *, name: str = "reward-engine"):
        self.settings = settings or EngineSettings()
        self.stats = EngineStats()
        self._model = model
        self._queue: deque[_Pending] = deque()
        self._queued_tokens = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def model(self) -> ScoringModel:
        return self._model

    @property
    def axis_keys(self) -> tuple[str, ...]:
        return self._model.axis_keys

    @property
    def version(self) -> str:
        return self._model.version

    @property
    def closed(self) -> bool:
        return self._closed

    async def score(self, items: Sequence[ModelInput]) -> list[Scores]:
        """Scores of each item (a conversation, a text already rendered with the chat template, or token ids)."""
        if self._closed:
            raise EngineClosed("the reward-model engine is closed")
        if not items:
            return []
        model = self._model
        # Tokenizing is quick for typical inputs; very long ones go to a thread so the loop keeps serving.
        if sum(_chars(item) for item in items) > OFFLOAD_CHARS:
            encoded = await asyncio.to_thread(model.encode, items)
        else:
            encoded = model.encode(items)
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        pending = [_Pending(e, loop.create_future(), loop, now) for e in encoded]
        with self._cond:
            if self._closed:
                raise EngineClosed("the reward-model engine is closed")
            self._queue.extend(pending)
            self._queued_tokens += sum(len(e.input_ids) for e in encoded)
            self.stats.requests += 1
            self._cond.notify()
        return list(await asyncio.gather(*(p.future for p in pending)))

    def swap(self, model: ScoringModel) -> str:
        """Use ``model`` from the next batch on (no restart); returns the version it replaced.

        Queued inputs were tokenized for the old model, so the new one must take the same inputs and
        give the same axes: a new adapter version of the same base and rubric.
        """
        if model.input_fingerprint != self._model.input_fingerprint:
            raise IncompatibleModel(
                "the new model has other axes, head, input limit or tokenizer; start a new engine for it",
                field="reward_model",
            )
        with self._cond:
            old, self._model = self._model, model
            self.stats.swaps += 1
        return old.version

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the worker; requests still queued fail with :class:`EngineClosed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # ------------------------------------------------------------------------------------------ worker

    def _budget_full(self) -> bool:
        return len(self._queue) >= self.settings.max_batch_size or self._queued_tokens >= self.settings.max_batch_tokens

    def _take(self) -> tuple[list[_Pending], ScoringModel] | None:
        """Wait for work, then for the gathering window; take everything queued. None when closed."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            deadline = self._queue[0].enqueued + self.settings.max_wait_ms / 1000
            while not self._closed and not self._budget_full():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._closed:
                return None
            # A round is capped so that newcomers (and a swapped model) wait for a few batches at most.
            taken: list[_Pending] = []
            tokens = 0
            while self._queue and (
                len(taken) < ROUND_BATCHES * self.settings.max_batch_size
                and tokens < ROUND_BATCHES * self.settings.max_batch_tokens
            ):
                item = self._queue.popleft()
                taken.append(item)
                tokens += len(item.encoded.input_ids)
            self._queued_tokens -= tokens
            return taken, self._model

    def plan(self, pending: Sequence[_Pending]) -> list[list[_Pending]]:
        """Length-sorted batches whose padded size stays within the token and row budgets."""
        batches: list[list[_Pending]] = []
        current: list[_Pending] = []
        for item in sorted(pending, key=lambda p: len(p.encoded.input_ids)):
            width = len(item.encoded.input_ids)  # sorted, so the newcomer is the longest
            if current and (
                len(current) + 1 > self.settings.max_batch_size
                or (len(current) + 1) * width > self.settings.max_batch_tokens
            ):
                batches.append(current)
                current = []
            current.append(item)
        if current:
            batches.append(current)
        return batches

    def _run(self) -> None:
        import torch

        while True:
            work = self._take()
            if work is None:
                break
            pending, model = work
            started = time.monotonic()
            self.stats.queue_seconds += sum(started - p.enqueued for p in pending)
            with torch.inference_mode():
                for batch in self.plan(pending):
                    # Futures already cancelled by their caller (deadline) are skipped, not computed.
                    live = [p for p in batch if not p.future.cancelled()]
                    if live:
                        self._forward(model, live)
        self._fail_queued()

    def _forward(self, model: ScoringModel, batch: list[_Pending]) -> None:
        import torch

        started = time.perf_counter()
        try:
            scores: list[Scores | BaseException] = list(model.score_encoded([p.encoded for p in batch]))
        except Exception as exc:  # a model failure goes back to its callers; the worker lives on
            if isinstance(exc, torch.cuda.OutOfMemoryError) and len(batch) > 1:
                # Retry in halves rather than failing every caller of an oversized batch.
                torch.cuda.empty_cache()
                half = len(batch) // 2
                self._forward(model, batch[:half])
                self._forward(model, batch[half:])
                return
            self.stats.errors += 1
            error = RuntimeError(f"reward model forward failed: {type(exc).__name__}: {exc}")
            scores = [error] * len(batch)
        stats = self.stats
        stats.forward_seconds += time.perf_counter() - started
        stats.forwards += 1
        stats.items += len(batch)
        stats.tokens += sum(len(p.encoded.input_ids) for p in batch)
        stats.padded_tokens += len(batch) * max(len(p.encoded.input_ids) for p in batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        stats.batch_sizes[len(batch)] += 1
        for item, value in zip(batch, scores, strict=True):
            # The caller's loop may be gone (a test loop closed); nothing to deliver to then.
            with contextlib.suppress(RuntimeError):
                item.loop.call_soon_threadsafe(_resolve, item.future, value)

    def _fail_queued(self) -> None:
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._queued_tokens = 0
        for item in left:
            with contextlib.suppress(RuntimeError):
                item.loop.call_soon_threadsafe(_resolve, item.future, EngineClosed("the reward-model engine closed"))
