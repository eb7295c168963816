"""The dynamic-batching engine: concurrent callers get what direct scoring gives, in shared forwards."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch

from reward_model.config import ModelSettings
from reward_model.data import Encoded, LabelledRecord
from reward_model.engine import EngineSettings, RewardEngine, _Pending
from reward_model.errors import EngineClosed, IncompatibleModel
from reward_model.model import ScoringModel, build_reward_model

from .support import AXES, MAX_LENGTH


@pytest.fixture
async def engine(scoring: ScoringModel) -> AsyncIterator[RewardEngine]:
    engine = RewardEngine(scoring, EngineSettings(max_wait_ms=20, max_batch_tokens=8192, max_batch_size=32))
    yield engine
    await engine.aclose()


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4


async def test_concurrent_callers_get_direct_results_in_shared_batches(
    engine: RewardEngine, scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    convs = [r.conversation for r in records[:64]]
    direct = [scoring.score([c])[0] for c in convs]

    async def caller(i: int):
        [scores] = await engine.score([convs[i]])
        return scores

    results = await asyncio.gather(*(caller(i) for i in range(64)))
    for got, want in zip(results, direct, strict=True):
        assert _close(got.expected, want.expected)
        assert got.model_version == scoring.version
    stats = engine.stats
    assert stats.items == 64 and stats.requests == 64
    assert stats.largest_batch > 1 and stats.forwards < 64, stats
    # The token budget holds: no forward was wider than 32 rows.
    assert max(stats.batch_sizes) <= 32


async def test_one_request_of_many_items_keeps_their_order(
    engine: RewardEngine, scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    convs = [r.conversation for r in records[64:80]]
    got = await engine.score(convs)
    want = scoring.score(convs)
    assert all(_close(g.expected, w.expected) for g, w in zip(got, want, strict=True))
    assert await engine.score([]) == []


async def test_swap_changes_outputs_without_a_restart(
    engine: RewardEngine, scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    conv = records[0].conversation
    [before] = await engine.score([conv])
    network = copy.deepcopy(scoring.model)
    with torch.no_grad():
        network.head.proj.weight.add_(0.5)
    replaced = engine.swap(ScoringModel(network, scoring.tokenizer, "v2", scoring.device))
    assert replaced == scoring.version
    [after] = await engine.score([conv])
    assert after.model_version == "v2" and not _close(before.expected, after.expected)
    assert engine.stats.swaps == 1


async def test_swap_refuses_a_model_with_other_axes(engine: RewardEngine, tiny_base: Path, scoring) -> None:
    other = build_reward_model(ModelSettings(base_model=str(tiny_base), max_length=MAX_LENGTH), AXES[:2], device="cpu")
    with pytest.raises(IncompatibleModel):
        engine.swap(ScoringModel(other, scoring.tokenizer, "other", torch.device("cpu")))


async def test_a_cancelled_caller_leaves_the_engine_working(
    engine: RewardEngine, records: list[LabelledRecord]
) -> None:
    task = asyncio.ensure_future(engine.score([records[1].conversation]))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [scores] = await engine.score([records[2].conversation])
    assert len(scores.expected) == len(AXES)


class _Broken:
    """Looks like a ScoringModel but fails every forward."""

    def __init__(self, good: ScoringModel) -> None:
        self.good = good
        self.version = "broken"
        self.axis_keys = good.axis_keys
        self.max_length = good.max_length
        self.input_fingerprint = good.input_fingerprint

    def encode(self, items):
        return self.good.encode(items)

    def score_encoded(self, encoded):
        raise RuntimeError("CUDA error: device-side assert")


async def test_forward_failure_reaches_the_callers_and_the_worker_survives(
    scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    engine = RewardEngine(_Broken(scoring), EngineSettings(max_wait_ms=1))  # type: ignore[arg-type]
    try:
        with pytest.raises(RuntimeError, match="device-side assert"):
            await engine.score([records[0].conversation])
        engine.swap(scoring)
        [scores] = await engine.score([records[0].conversation])
        assert scores.model_version == scoring.version and engine.stats.errors == 1
    finally:
        await engine.aclose()


async def test_closed_engine_refuses_work(scoring: ScoringModel, records: list[LabelledRecord]) -> None:
    engine = RewardEngine(scoring)
    await engine.aclose()
    assert engine.closed
    with pytest.raises(EngineClosed):
        await engine.score([records[0].conversation])


def test_plan_packs_by_length_under_the_token_budget(scoring: ScoringModel) -> None:
    engine = RewardEngine(scoring, EngineSettings(max_batch_tokens=100, max_batch_size=4))
    try:
        loop = asyncio.new_event_loop()
        try:
            lengths = [10, 50, 12, 11, 49, 13, 200, 9]
            pending = [_Pending(Encoded((1,) * n, False, n), loop.create_future(), loop, 0.0) for n in lengths]
            batches = engine.plan(pending)
        finally:
            loop.close()
        widths = [[len(p.encoded.input_ids) for p in b] for b in batches]
        assert widths == [[9, 10, 11, 12], [13, 49], [50], [200]]
        assert all(len(b) * max(b) <= 100 for b in widths if len(b) > 1)
    finally:
        engine.close()


async def test_a_flood_is_served_in_capped_rounds_and_long_inputs_are_tokenized_off_the_loop(
    scoring: ScoringModel, records: list[LabelledRecord]
) -> None:
    engine = RewardEngine(scoring, EngineSettings(max_batch_size=8, max_wait_ms=1))
    try:
        convs = [r.conversation for r in records[:100]]
        huge = type(convs[0])((("user", "我 头疼 " * 12_000),), convs[0].reasoning, convs[0].response)
        got = await engine.score([*convs, huge])
        assert len(got) == 101 and got[-1].truncated and not any(g.truncated for g in got[:-1])
        want = scoring.score(convs[:5])
        assert all(_close(g.expected, w.expected) for g, w in zip(got[:5], want, strict=True))
        assert engine.stats.largest_batch <= 8 and engine.stats.forwards >= 13
    finally:
        await engine.aclose()
