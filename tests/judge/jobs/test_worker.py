"""Jobs end to end in one process: the service ingests, an arq worker (real Redis, PostgreSQL) scores chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from judge.jobs.schemas import JobOptions, JobSpec
from judge.jobs.service import JobsService, result_states
from judge.runtime import Runtime
from judge.settings import Settings
from tests.judge.jobs.conftest import RunWorker, marker_judge, sample_line
from tests.support.openai_server import OpenAIServer


async def blocks(lines: list[bytes], size: int = 7) -> AsyncIterator[bytes]:
    data = b"".join(line + b"\n" for line in lines)
    for start in range(0, len(data), size * 97):
        yield data[start : start + size * 97]


async def results(service: JobsService, job_id: str, kept: bool | None = None) -> list[dict[str, object]]:
    out = []
    async for block in await service.results(job_id, result_states(kept)):
        out += [orjson.loads(line) for line in block.splitlines()]
    return out


async def test_filter_job_keeps_passing_samples_and_reports_each_line_once(
    job_settings: Settings, openai_server: OpenAIServer, run_worker: RunWorker
) -> None:
    openai_server.default = marker_judge
    lines = [orjson.dumps(sample_line(i, passing=i % 3 == 0)) for i in range(40)]
    lines[5] = b"{\xe5\x9d\x8f JSON"  # not JSON, not even UTF-8
    lines[7] = orjson.dumps({"id": "缺回复", "messages": [{"role": "user", "content": "头疼"}]})
    async with await Runtime.open(job_settings) as runtime:
        service = JobsService(runtime)
        try:
            spec = JobSpec(kind="filter", rubric="prmed", judge="loop", options=JobOptions(chunk_size=8))
            view = await service.create_from_stream(spec, blocks(lines))
            job_id = str(view["id"])
            assert view["state"] == "running"
            assert view["counts"]["total"] == 40

            async def finished() -> bool:
                return (await service.get(job_id))["state"] == "done"

            await run_worker(finished)
            job = await service.get(job_id)
            counts = job["counts"]
            assert counts == {
                "total": 40, "done": 40, "pending": 0, "kept": 14, "dropped": 24, "failed": 0, "invalid": 2
            }  # fmt: skip
            everything = await results(service, job_id)
            assert [r["line"] for r in everything] == list(range(1, 41))
            kept = await results(service, job_id, kept=True)
            assert {r["line"] for r in kept} == {i + 1 for i in range(40) if i % 3 == 0}
            assert len(kept) == 14
            assert all(r["sample"]["id"] == f"样本-{int(r['line']) - 1}" for r in kept)  # type: ignore[index]
            assert all(r["verdict"]["passed"] is True for r in kept)  # type: ignore[index]
            bad = {r["line"]: r for r in await results(service, job_id, kept=False) if r["outcome"] == "invalid"}
            assert set(bad) == {6, 8}
            assert "response" in str(bad[8]["error"])
            summary = job["summary"]
            assert summary["outcomes"] == {"kept": 14, "dropped": 24, "invalid": 2}
            assert summary["axes"]["safety"]["histogram"] == {"1": 0, "2": 0, "3": 24, "4": 0, "5": 14}
            assert summary["axes"]["safety"]["pass_rate"] == 14 / 38
            assert openai_server.calls == 38

            # The same samples again (and one twice): every verdict comes from the store or cache.
            again = await service.create_from_stream(spec, blocks([lines[0], *lines, lines[0]]))

            async def again_finished() -> bool:
                return (await service.get(str(again["id"])))["state"] == "done"

            await run_worker(again_finished)
            assert openai_server.calls == 38
            second = await results(service, str(again["id"]))
            assert len(second) == 42
            first_verdicts = {r["line"]: r["verdict"]["verdict_id"] for r in everything if "verdict" in r}  # type: ignore[index]
            assert all(r["verdict"]["cached"] for r in second if "verdict" in r)  # type: ignore[index]
            assert {r["verdict"]["verdict_id"] for r in second if "verdict" in r} == set(first_verdicts.values())  # type: ignore[index]
        finally:
            await service.aclose()
