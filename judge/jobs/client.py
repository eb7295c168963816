"""The CLI's server mode: upload a JSONL file as a job, follow it, download its kept and dropped records."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from judge.jobs.schemas import JobSpec
from rubrics.errors import RubricJudgeError

UPLOAD_BLOCK = 1 << 20


class ServerError(RubricJudgeError):
    """An error answer from the server, in its own shape."""

    def __init__(self, status: int, type_: str, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status_code = status
        self.remote_type = type_

    @property
    def type(self) -> str:
        return self.remote_type


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = orjson.loads(response.content)["error"]
        raise ServerError(response.status_code, error.get("type", "HTTPError"), error["message"], error.get("field"))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise ServerError(response.status_code, "HTTPError", response.text[:500]) from None


class JobsClient:
    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = 60.0) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout_s, read=None)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def create(self, spec: JobSpec, source: Path, on_bytes: Callable[[int], Any] | None = None) -> dict[str, Any]:
        """Stream ``source`` as the body of ``POST /v1/jobs``; the answer comes once the server has stored it all."""

        async def body() -> AsyncIterator[bytes]:
            with source.open("rb") as fh:
                while block := fh.read(UPLOAD_BLOCK):
                    yield block
                    if on_bytes is not None:
                        on_bytes(len(block))

        params = {"kind": spec.kind, "rubric": spec.rubric, "judge": spec.judge}
        if spec.generator is not None:
            params["generator"] = spec.generator
        params["options"] = spec.options.model_dump_json()
        response = await self._client.post(
            "/v1/jobs", params=params, content=body(), headers={"content-type": "application/x-ndjson"}
        )
        _raise_for(response)
        result: dict[str, Any] = orjson.loads(response.content)
        return result

    async def get(self, job_id: str) -> dict[str, Any]:
        response = await self._client.get(f"/v1/jobs/{job_id}")
        _raise_for(response)
        result: dict[str, Any] = orjson.loads(response.content)
        return result

    async def cancel(self, job_id: str) -> dict[str, Any]:
        response = await self._client.post(f"/v1/jobs/{job_id}/cancel")
        _raise_for(response)
        result: dict[str, Any] = orjson.loads(response.content)
        return result

    async def download(self, job_id: str, *, kept: bool, dest: Path) -> int:
        """Stream one side of a job's results into ``dest`` (written aside, then moved into place); lines written."""
        tmp = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        lines = 0
        async with self._client.stream(
            "GET", f"/v1/jobs/{job_id}/results", params={"kept": "true" if kept else "false"}
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            with tmp.open("wb") as fh:
                async for block in response.aiter_bytes():
                    fh.write(block)
                    lines += block.count(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        tmp.replace(dest)
        return lines
