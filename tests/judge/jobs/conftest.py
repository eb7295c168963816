"""Fixtures for bulk jobs: settings on the test PostgreSQL and Redis, judges and a generator on the loopback server,
an in-process arq worker, Chinese inputs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from judge.jobs.service import JobsService, result_states
from judge.jobs.worker import WorkerConfig, build_worker, close_worker
from judge.settings import Settings
from tests.support.openai_server import ChatRequest, OpenAIServer, Verdict

PATIENTS = [
    "俺娘这两天心口窝疼得厉害，还老是喘不上气，咋整啊",
    "我家娃发烧三天了，39度退不下来，吃了美林也不管用，急死了",
    "医生我最近老是头晕眼花的，一站起来就发黑，是不是贫血啊",
    "肚子一阵一阵地绞着疼，拉了好几回稀，浑身没劲",
]


def write_job_judges(path: Path, server: OpenAIServer, **judge: Any) -> Path:
    """A judge ``loop`` and a generator ``gen`` on the loopback server; ``needs-key`` lacks its API key."""
    common = {"backend": "openai", "base_url": server.url, "timeout_s": 10, "max_retries": 1}
    profiles = [
        {"name": "loop", "model": "judge-model", "concurrency": 32, **common, **judge},
        {"name": "gen", "model": "gen-model", "concurrency": 32, "temperature": 0.7, **common},
        {"name": "needs-key", "model": "m", "api_key_env": "RJ_TEST_SURELY_UNSET_KEY", **common},
    ]
    path.write_text(yaml.safe_dump({"judges": profiles}, allow_unicode=True), encoding="utf-8")
    return path


def sample_line(i: int, *, passing: bool = False, **changes: Any) -> dict[str, Any]:
    """A Chinese sample; ``passing`` puts the marker that :func:`marker_judge` scores 5 on every axis."""
    patient = PATIENTS[i % len(PATIENTS)]
    body: dict[str, Any] = {
        "id": f"样本-{i}",
        "messages": [{"role": "user", "content": f"{patient}（第{i}位）"}],
        "reasoning": (
            f"1. 情绪感知：患者焦虑。\n2. 扰动识别：口语。\n3. 话语纠正：{patient}\n"
            f"4. 主诉提取：症状{i}。\n5. 医学推理：排除急症。"
        ),
        "response": ("【合格】" if passing else "") + f"建议尽快就医（回复{i}）。",
    }
    body.update(changes)
    return body


def marker_judge(request: ChatRequest) -> Verdict:
    """5 on every axis when the judged text carries 【合格】 or is a second draft (第2稿), else 3 on every axis."""
    judged = "\n".join(request.fenced_texts)
    return Verdict(scores=5 if "【合格】" in judged or "第2稿" in judged else 3)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    with path.open("wb") as fh:
        for row in rows:
            fh.write((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n")
    return path


async def collect_results(service: JobsService, job_id: str, kept: bool | None = None) -> list[dict[str, Any]]:
    """A job's result records, as the results endpoint streams them."""
    out: list[dict[str, Any]] = []
    async for block in await service.results(job_id, result_states(kept)):
        out += [orjson.loads(line) for line in block.splitlines()]
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture
def job_judges(tmp_path: Path, openai_server: OpenAIServer) -> Path:
    return write_job_judges(tmp_path / "judges.yaml", openai_server)


@pytest.fixture
def job_settings(
    pg_url: str, pg_engine: AsyncEngine, redis_url: str, redis_prefix: str, job_judges: Path, tmp_path: Path
) -> Settings:
    # pg_engine empties every table first (jobs included).
    return Settings(  # type: ignore[call-arg]
        database_url=pg_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        judges_file=job_judges,
        jobs_input_dir=tmp_path,
        _env_file=None,
    )


RunWorker = Callable[..., Awaitable[None]]


@pytest.fixture
def run_worker(job_settings: Settings) -> RunWorker:
    """``await run_worker(until)``: an in-process worker serving the queue until ``until()`` is true."""

    async def run(
        until: Callable[[], Awaitable[bool]], *, config: WorkerConfig | None = None, timeout_s: float = 60.0
    ) -> None:
        worker = build_worker(job_settings, config or WorkerConfig(lease_s=5, poll_delay_s=0.02), handle_signals=False)
        task = asyncio.create_task(worker.async_run())
        try:
            async with asyncio.timeout(timeout_s):
                while not await until():
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await close_worker(worker)

    return run
