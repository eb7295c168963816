"""/v1/jobs over HTTP: streamed upload or a server-side path, status, results, list, cancel, and the 4xx answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from judge.jobs.worker import WorkerConfig, build_worker, close_worker
from judge.settings import Settings
from tests.judge.jobs.conftest import marker_judge, sample_line, write_job_judges, write_jsonl
from tests.support.openai_server import OpenAIServer

NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture
def judges_file(tmp_path: Path, openai_server: OpenAIServer) -> Path:
    return write_job_judges(tmp_path / "judges.yaml", openai_server)


@pytest.fixture
def settings(settings: Settings, redis_url: str, redis_prefix: str, tmp_path: Path) -> Settings:
    (tmp_path / "inbox").mkdir()
    return settings.model_copy(
        update={"redis_url": redis_url, "redis_prefix": redis_prefix, "jobs_input_dir": tmp_path / "inbox"}
    )


async def serve_queue(settings: Settings, until: Callable[[], Awaitable[bool]]) -> None:
    worker = build_worker(settings, WorkerConfig(lease_s=5, poll_delay_s=0.02), handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        async with asyncio.timeout(60):
            while not await until():
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await close_worker(worker)


async def body(lines: list[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line + b"\n"


async def finish(client: httpx.AsyncClient, settings: Settings, job_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await client.get(f"/v1/jobs/{job_id}")).json()["state"] == "done"

    await serve_queue(settings, done)
    job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
    return job


def jsonl(response: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in response.content.splitlines()]


async def test_upload_follow_and_download(
    client: httpx.AsyncClient, settings: Settings, openai_server: OpenAIServer
) -> None:
    openai_server.default = marker_judge
    lines = [orjson.dumps(sample_line(i, passing=i < 4)) for i in range(20)] + [b'{"messages": []}']
    options = orjson.dumps({"chunk_size": 6, "rationale": False}).decode()
    created = await client.post(
        "/v1/jobs",
        params={"judge": "loop", "rubric": "prmed@1", "options": options},
        content=body(lines),
        headers=NDJSON,
    )
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["state"] == "running" and job["kind"] == "filter" and job["rubric"] == "prmed@1"
    assert job["counts"]["total"] == 21 and job["counts"]["invalid"] == 1
    assert job["options"]["chunk_size"] == 6

    job = await finish(client, settings, job["id"])
    assert job["counts"] == {"total": 21, "done": 21, "pending": 0, "kept": 4, "dropped": 16, "failed": 0, "invalid": 1}
    assert job["rate"] > 0 and job["eta_s"] is None and job["finished_at"] is not None
    assert job["summary"]["pass_rate"] == 0.2

    kept = await client.get(f"/v1/jobs/{job['id']}/results", params={"kept": "true"})
    assert kept.headers["content-type"] == "application/x-ndjson"
    assert [r["line"] for r in jsonl(kept)] == [1, 2, 3, 4]
    assert all("rationale" not in axis for r in jsonl(kept) for axis in r["verdict"]["axes"].values())
    rest = jsonl(await client.get(f"/v1/jobs/{job['id']}/results", params={"kept": "false"}))
    assert [r["line"] for r in rest] == list(range(5, 22))
    assert rest[-1]["outcome"] == "invalid" and "messages" in rest[-1]["error"]
    invalid = jsonl(await client.get(f"/v1/jobs/{job['id']}/results", params={"outcome": "invalid"}))
    assert [r["line"] for r in invalid] == [21]

    listed = (await client.get("/v1/jobs")).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]] and "summary" not in listed[0]
    assert (await client.get("/v1/jobs", params={"state": "running"})).json()["jobs"] == []
    # Cancelling a finished job changes nothing.
    assert (await client.post(f"/v1/jobs/{job['id']}/cancel")).json()["state"] == "done"


async def test_a_server_side_path_is_read_in_the_background(
    client: httpx.AsyncClient, settings: Settings, openai_server: OpenAIServer
) -> None:
    openai_server.default = marker_judge
    assert settings.jobs_input_dir is not None
    write_jsonl(settings.jobs_input_dir / "批次1.jsonl", [sample_line(i, passing=True) for i in range(12)])
    created = await client.post(
        "/v1/jobs", json={"judge": "loop", "options": {"chunk_size": 5}, "source": {"path": "批次1.jsonl"}}
    )
    assert created.status_code == 202, created.text
    job = await finish(client, settings, created.json()["id"])
    assert job["counts"]["kept"] == 12 and job["source"].endswith("批次1.jsonl")


async def test_a_cancelled_job_is_left_alone_by_workers(
    client: httpx.AsyncClient, settings: Settings, openai_server: OpenAIServer
) -> None:
    lines = [orjson.dumps(sample_line(i)) for i in range(10)]
    job = (await client.post("/v1/jobs", params={"judge": "loop"}, content=body(lines), headers=NDJSON)).json()
    cancelled = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.json()["state"] == "cancelled"

    async def queue_drained() -> bool:
        return True

    await serve_queue(settings, queue_drained)
    await asyncio.sleep(0.3)
    job = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert job["state"] == "cancelled" and job["counts"]["pending"] == 10
    assert (await client.get(f"/v1/jobs/{job['id']}/results")).content == b""
    assert openai_server.calls == 0


async def test_curate_over_http(client: httpx.AsyncClient, settings: Settings, openai_server: OpenAIServer) -> None:
    openai_server.default = marker_judge
    lines = [orjson.dumps({"id": "问-1", "prompt": "俺家老人腿肿了好几天"})]
    created = await client.post(
        "/v1/jobs", params={"kind": "curate", "judge": "loop", "generator": "gen"}, content=body(lines), headers=NDJSON
    )
    assert created.status_code == 202, created.text
    job = await finish(client, settings, created.json()["id"])
    assert job["kind"] == "curate" and job["generator"] == "gen" and job["counts"]["kept"] == 1
    (record,) = jsonl(await client.get(f"/v1/jobs/{job['id']}/results", params={"kept": "true"}))
    assert record["lineage"]["round"] == 2
    assert record["messages"][-1]["content"].startswith("<think>")


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"judge": "无此评审"}, 404, "judge"),
        ({"judge": "loop", "rubric": "nope"}, 404, "rubric"),
        ({"judge": "needs-key"}, 503, "judge"),
        ({"judge": "loop", "kind": "curate"}, 422, "generator"),
        ({"judge": "loop", "generator": "gen"}, 422, "generator"),
        ({"judge": "loop", "kind": "curate", "generator": "无此生成器"}, 404, "generator"),
        ({"judge": "loop", "kind": "curate", "generator": "needs-key"}, 503, "generator"),
        ({"judge": "loop", "kind": "rank"}, 422, "kind"),
        ({"judge": "loop", "options": "{坏"}, 422, "options"),
        ({"judge": "loop", "options": '{"chunk_size": 0}'}, 422, "options.chunk_size"),
        ({"judge": "loop", "options": '{"colour": "red"}'}, 422, "options.colour"),
        ({"judge": "loop", "priority": "high"}, 422, "priority"),
        ({}, 422, "judge"),
    ],
)
async def test_bad_job_requests_name_the_field(
    client: httpx.AsyncClient, params: dict[str, str], status: int, field: str
) -> None:
    response = await client.post("/v1/jobs", params=params, content=b"{}\n", headers=NDJSON)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert (await client.get("/v1/jobs")).json()["jobs"] == []


async def test_other_errors(client: httpx.AsyncClient, make_client: Any, settings: Settings) -> None:
    wrong_type = await client.post(
        "/v1/jobs", params={"judge": "loop"}, content=b"{}", headers={"content-type": "text/csv"}
    )
    assert wrong_type.status_code == 415 and wrong_type.json()["error"]["field"] == "content-type"
    for path, status in (("../outside.jsonl", 400), ("missing.jsonl", 400)):
        response = await client.post("/v1/jobs", json={"judge": "loop", "source": {"path": path}})
        assert response.status_code == status and response.json()["error"]["field"] == "source.path"
    no_source = await client.post("/v1/jobs", json={"judge": "loop"})
    assert no_source.status_code == 422 and no_source.json()["error"]["field"] == "source"
    missing = await client.get("/v1/jobs/nope")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "job_id"
    assert (await client.post("/v1/jobs/nope/cancel")).status_code == 404
    assert (await client.get("/v1/jobs/nope/results")).status_code == 404
    assert (await client.get("/v1/jobs", params={"state": "sleeping"})).json()["error"]["field"] == "state"
    job = (await client.post("/v1/jobs", params={"judge": "loop"}, content=b"{}\n", headers=NDJSON)).json()
    pending = await client.get(f"/v1/jobs/{job['id']}/results", params={"outcome": "pending"})
    assert pending.status_code == 422 and pending.json()["error"]["field"] == "outcome"

    async with make_client(redis_url=None, jobs_input_dir=None) as bare:
        no_queue = await bare.post("/v1/jobs", params={"judge": "loop"}, content=b"{}\n", headers=NDJSON)
        assert no_queue.status_code == 503 and no_queue.json()["error"]["field"] == "redis_url"
        no_paths = await bare.post("/v1/jobs", json={"judge": "loop", "source": {"path": "x.jsonl"}})
        assert no_paths.status_code == 400 and "RJ_JOBS_INPUT_DIR" in no_paths.json()["error"]["message"]
