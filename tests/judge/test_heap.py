"""The collector's settings for long-running processes (judge/heap.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from judge import heap


@pytest.fixture
def default_collector() -> Iterator[None]:
    """Python's own collector settings during the test; the process's settings back afterwards."""
    threshold = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*threshold)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settle_collects_start_up_garbage_then_freezes_and_spaces_young_collections(default_collector: None) -> None:
    # A reference cycle that became garbage during start-up: it must be collected, not frozen for ever.
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    live = _Node()
    frozen_before = gc.get_freeze_count()

    heap.settle()

    assert gone() is None
    assert gc.get_freeze_count() > frozen_before
    assert not any(obj is live for obj in gc.get_objects())  # frozen objects are out of the collector's sight
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 20, 20)
