"""The worker's event loop is uvloop (installed with uvicorn[standard]), and results and errors pass through."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from judge import event_loop


def test_runs_on_uvloop_and_returns_the_result() -> None:
    async def main() -> tuple[type[asyncio.AbstractEventLoop], str]:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()), "评分完成"

    loop_type, result = event_loop.run(main())
    assert issubclass(loop_type, uvloop.Loop) and result == "评分完成"


def test_an_exception_reaches_the_caller() -> None:
    async def main() -> None:
        raise ValueError("判定失败")

    with pytest.raises(ValueError, match="判定失败"):
        event_loop.run(main())
