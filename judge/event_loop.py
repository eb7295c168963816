"""The event loop the service's own long-running processes run on: uvloop where it is installed.

The API runs under uvicorn, which picks uvloop itself; the queue worker and local jobs start their loop here, so
they get the same cheaper I/O callbacks (the worker spends much of a judged sample's CPU in the loop and the
aiohttp transport). uvloop comes with ``uvicorn[standard]``; without it (Windows), asyncio's own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when available."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
