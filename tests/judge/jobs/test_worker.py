"""Jobs end to end in one process: the service ingests, an arq worker (real Redis, PostgreSQL) scores chunks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from judge.jobs.schemas import JobOptions, JobSpec
from judge.jobs.service import JobsService
from judge.jobs.worker import WorkerConfig, build_worker, close_worker
from judge.runtime import Runtime
from judge.settings import Settings
from tests.judge.jobs.conftest import RunWorker, collect_results, marker_judge, sample_line
from tests.support.openai_server import Behaviour, ChatRequest, OpenAIServer, Verdict, bad_request


async def blocks(lines: list[bytes], size: int = 7) -> AsyncIterator[bytes]:
    data = b"".join(line + b"\n" for line in lines)
    for start in range(0, len(data), size * 97):
        yield data[start : start + size * 97]


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
            spec = JobSpec(kind="filter", rubric="prmed@1", judge="loop", options=JobOptions(chunk_size=8))
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
            everything = await collect_results(service, job_id)
            assert [r["line"] for r in everything] == list(range(1, 41))
            kept = await collect_results(service, job_id, kept=True)
            assert {r["line"] for r in kept} == {i + 1 for i in range(40) if i % 3 == 0}
            assert len(kept) == 14
            assert all(r["sample"]["id"] == f"样本-{int(r['line']) - 1}" for r in kept)
            assert all(r["verdict"]["passed"] is True for r in kept)
            others = await collect_results(service, job_id, kept=False)
            bad = {r["line"]: r for r in others if r["outcome"] == "invalid"}
            assert set(bad) == {6, 8}
            assert "response" in str(bad[8]["error"])
            summary = job["summary"]
            assert summary["outcomes"] == {"kept": 14, "dropped": 24, "invalid": 2}
            assert summary["axes"]["safety"]["histogram"] == {"1": 0, "2": 0, "3": 24, "4": 0, "5": 14}
            assert summary["axes"]["safety"]["pass_rate"] == 14 / 38
            assert openai_server.calls == 38
            # What the job cost: every judged line once; the loopback's prefix cache served the shared prompt start.
            assert summary["usage"]["calls"] == 38
            assert 0 < summary["usage"]["cached_tokens"] < summary["usage"]["prompt_tokens"]
            assert summary["usage"]["completion_tokens"] > 0
            assert summary["cost"] is None and summary["generator_cost"] is None  # "loop" has no prices

            # The same samples again (and one twice): every verdict comes from the store or cache.
            again = await service.create_from_stream(spec, blocks([lines[0], *lines, lines[0]]))

            async def again_finished() -> bool:
                return (await service.get(str(again["id"])))["state"] == "done"

            await run_worker(again_finished)
            assert openai_server.calls == 38
            assert (await service.get(str(again["id"])))["summary"]["usage"] == {}  # hits cost nothing
            second = await collect_results(service, str(again["id"]))
            assert len(second) == 42
            first_verdicts = {r["line"]: r["verdict"]["verdict_id"] for r in everything if "verdict" in r}
            assert all(r["verdict"]["cached"] for r in second if "verdict" in r)
            assert {r["verdict"]["verdict_id"] for r in second if "verdict" in r} == set(first_verdicts.values())
        finally:
            await service.aclose()


async def test_curate_job_refines_failing_drafts_with_feedback(
    job_settings: Settings, openai_server: OpenAIServer, run_worker: RunWorker
) -> None:
    openai_server.default = marker_judge  # first drafts score 3 everywhere, second drafts 5
    prompts = [
        orjson.dumps({"id": f"对话-{i}", "messages": [{"role": "user", "content": f"{patient}（{i}）"}]})
        for i, patient in enumerate(["俺娘心口窝疼得厉害咋整啊", "娃发烧三天退不下来", "一站起来眼前就发黑"])
    ]
    prompts.append(orjson.dumps({"prompt": "肚子绞着疼，拉稀好几回了"}))
    prompts.append(orjson.dumps({"messages": [{"role": "assistant", "content": "您好"}]}))  # ends with the doctor
    async with await Runtime.open(job_settings) as runtime:
        service = JobsService(runtime)
        try:
            spec = JobSpec(kind="curate", judge="loop", generator="gen", options=JobOptions(chunk_size=2))
            view = await service.create_from_stream(spec, blocks(prompts))

            async def finished() -> bool:
                return (await service.get(str(view["id"])))["state"] == "done"

            await run_worker(finished)
            job = await service.get(str(view["id"]))
            assert job["counts"]["kept"] == 4
            assert job["counts"]["invalid"] == 1
            assert job["summary"]["rounds"] == {"1": {"judged": 4, "passed": 0}, "2": {"judged": 4, "passed": 4}}
            kept = await collect_results(service, str(view["id"]), kept=True)
            first = kept[0]
            assert first["id"] == "对话-0"
            messages = first["messages"]
            assert messages[0] == {"role": "user", "content": "俺娘心口窝疼得厉害咋整啊（0）"}
            answer = messages[-1]
            assert answer["role"] == "assistant"
            assert answer["content"].startswith("<think>\n1. 情绪感知")
            assert "</think>\n\n" in answer["content"] and "第2稿" in answer["content"]
            lineage = first["lineage"]
            assert lineage["round"] == 2
            rounds = lineage["rounds"]
            assert [r["passed"] for r in rounds] == [False, True]
            assert len(rounds[0]["failing_axes"]) == 13
            assert first["verdict"]["verdict_id"] == rounds[1]["verdict_id"]
            # The refinement request carried the judge's feedback: rationale and the next level's anchor.
            refine = [r for r in openai_server.requests if "PREVIOUS_ANSWER" in r.request.prompt]
            assert len(refine) == 4
            prompt = refine[0].request.prompt
            assert "下一档（4 分）的标准" in prompt and "评审理由" in prompt and "第1稿" in prompt
            invalid = await collect_results(service, str(view["id"]), kept=False)
            assert [r["line"] for r in invalid] == [5]
            assert "role user" in str(invalid[0]["error"])
        finally:
            await service.aclose()


async def test_curate_with_one_round_drops_and_a_broken_generator_fails_items(
    job_settings: Settings, openai_server: OpenAIServer, run_worker: RunWorker
) -> None:
    def judge_or_refuse(request: ChatRequest) -> Behaviour:
        if not request.axis_keys and "坏" in request.prompt:
            return bad_request("generator refuses")
        return Verdict(scores=3)

    openai_server.default = judge_or_refuse
    prompts = [orjson.dumps({"prompt": text}) for text in ("头疼两天了", "坏掉的请求", "嗓子疼")]
    async with await Runtime.open(job_settings) as runtime:
        service = JobsService(runtime)
        try:
            spec = JobSpec(kind="curate", judge="loop", generator="gen", options=JobOptions(rounds=1))
            view = await service.create_from_stream(spec, blocks(prompts))

            async def finished() -> bool:
                return (await service.get(str(view["id"])))["state"] == "done"

            await run_worker(finished)
            job = await service.get(str(view["id"]))
            assert job["counts"]["dropped"] == 2 and job["counts"]["failed"] == 1
            rows = {r["line"]: r for r in await collect_results(service, str(view["id"]))}
            assert rows[2]["outcome"] == "failed"
            assert "HTTP 400" in str(rows[2]["error"]) and "round 1" in str(rows[2]["error"])
            assert rows[1]["outcome"] == "dropped" and rows[1]["lineage"]["round"] is None
        finally:
            await service.aclose()


async def test_an_upload_that_breaks_off_fails_its_job(job_settings: Settings) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield orjson.dumps(sample_line(0)) + b"\n"
        raise ConnectionResetError("client went away")

    async with await Runtime.open(job_settings) as runtime:
        service = JobsService(runtime)
        try:
            with pytest.raises(ConnectionResetError):
                await service.create_from_stream(JobSpec(judge="loop"), broken())
            (job,) = await service.list(state=None, limit=5, offset=0)
            assert job["state"] == "failed" and "ConnectionResetError" in job["error"]
        finally:
            await service.aclose()


async def test_a_chunk_that_keeps_failing_is_given_up_with_its_reason(
    job_settings: Settings, openai_server: OpenAIServer, run_worker: RunWorker, tmp_path: Path
) -> None:
    async with await Runtime.open(job_settings) as runtime:
        service = JobsService(runtime)
        try:
            lines = [orjson.dumps(sample_line(i)) for i in range(4)]
            job_id = str((await service.create_from_stream(JobSpec(judge="loop"), blocks(lines)))["id"])

            async def finished() -> bool:
                return (await service.get(job_id))["state"] == "done"

            # This worker's judges file has no "loop" profile: every attempt fails, then the chunk is given up.
            (tmp_path / "other.yaml").write_text("judges: []\n", encoding="utf-8")
            other = job_settings.model_copy(update={"judges_file": tmp_path / "other.yaml"})
            worker = build_worker(
                other, WorkerConfig(lease_s=5, poll_delay_s=0.02, max_attempts=1), handle_signals=False
            )
            task = asyncio.create_task(worker.async_run())
            try:
                async with asyncio.timeout(30):
                    while not await finished():
                        await asyncio.sleep(0.05)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await close_worker(worker)
            job = await service.get(job_id)
            assert job["counts"]["failed"] == 4
            records = await collect_results(service, job_id)
            assert all("given up after 1 attempts" in r["error"] and "loop" in r["error"] for r in records)
        finally:
            await service.aclose()


async def test_a_stopping_worker_lets_go_of_its_chunk_at_once(
    job_settings: Settings, openai_server: OpenAIServer
) -> None:
    openai_server.default = Verdict(delay_s=3)  # a slow judge: the chunk is in hand when the worker stops
    async with await Runtime.open(job_settings) as runtime:
        service = JobsService(runtime)
        try:
            job_id = str(
                (await service.create_from_stream(JobSpec(judge="loop"), blocks([orjson.dumps(sample_line(1))])))["id"]
            )
            worker = build_worker(job_settings, WorkerConfig(lease_s=30, poll_delay_s=0.02), handle_signals=False)
            task = asyncio.create_task(worker.async_run())
            async with asyncio.timeout(20):
                while openai_server.in_flight == 0:
                    await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await close_worker(worker)
            async with runtime.engine.connect() as conn:
                row = (await conn.execute(text("SELECT state, owner, error FROM job_chunks"))).one()
            assert tuple(row) == ("pending", None, "worker stopped")
            assert (await service.get(job_id))["counts"]["pending"] == 1
        finally:
            await service.aclose()


async def test_a_started_worker_has_settled_its_heap(run_worker: RunWorker) -> None:
    # Young collections every 700 allocations and full passes over every library cost ~0.2 ms a judged sample.
    import gc

    from judge import heap

    threshold = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:

        async def settled() -> bool:
            return gc.get_threshold()[0] == heap.YOUNG_THRESHOLD

        await run_worker(settled, timeout_s=30)
    finally:
        gc.set_threshold(*threshold)


@pytest.mark.parametrize("damage", ["queue lost", "one task lost", "a dead worker's mark"])
async def test_chunks_whose_task_will_not_run_are_queued_again(
    job_settings: Settings, openai_server: OpenAIServer, run_worker: RunWorker, redis_client: Redis, damage: str
) -> None:
    # "a dead worker's mark", found by bench_jobs' kill scenario: a worker killed after arq marked its task running
    # and before it claimed the chunk leaves no lease to expire, and arq keeps the task "in progress" for the task
    # timeout (hours). "one task lost" with others still queued used to wait for the queue to drain.
    from judge.jobs.queue import task_id
    from judge.jobs.repository import JobRepository

    async with await Runtime.open(job_settings) as runtime:
        service = JobsService(runtime)
        try:
            spec = JobSpec(judge="loop", options=JobOptions(chunk_size=3))
            lines = [orjson.dumps(sample_line(i)) for i in range(9)]
            job_id = str((await service.create_from_stream(spec, blocks(lines)))["id"])
            async with runtime.sessions() as session:
                first = (await JobRepository(session).pending_chunks())[0]
            queue, task = f"{job_settings.redis_prefix}jobs", task_id(job_id, first.chunk, first.attempts)
            assert await redis_client.zscore(queue, task) is not None
            if damage == "queue lost":
                assert await redis_client.delete(queue) == 1  # Redis restarted empty
            elif damage == "one task lost":
                assert await redis_client.zrem(queue, task) == 1
            else:
                await redis_client.set(f"arq:in-progress:{task}", b"1", px=3_600_000)

            async def finished() -> bool:
                return (await service.get(job_id))["state"] == "done"

            config = WorkerConfig(lease_s=1, poll_delay_s=0.02, queue_check_s=0.3)
            await run_worker(finished, config=config, timeout_s=30)
            assert (await service.get(job_id))["counts"]["done"] == 9
            assert [r["line"] for r in await collect_results(service, job_id)] == list(range(1, 10))
        finally:
            await service.aclose()
