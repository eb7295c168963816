"""Key scopes (a plain key cannot change what others get), one "latest" on every replica, 503 with the store down."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from api.app import create_app
from judge.settings import Settings
from tests.api.conftest import AppClient, running
from tests.api.samples import sample, score_body
from tests.api.test_rubrics import _new_rubric
from tests.support.private_services import free_port

PLAIN = {"authorization": "Bearer plain-key"}
ADMIN = {"authorization": "Bearer root-key"}


async def test_plain_keys_score_and_read_but_only_admin_keys_change_what_others_get(make_client: AppClient) -> None:
    async with make_client(api_keys=SecretStr("plain-key"), admin_keys=SecretStr("root-key")) as c:
        assert (await c.get("/v1/rubrics", headers=PLAIN)).status_code == 200
        assert (await c.post("/v1/score", json=score_body(sample()), headers=PLAIN)).status_code == 200
        refused = await c.post("/v1/rubrics", json=_new_rubric(), headers=PLAIN)
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "Forbidden"
        for url in ("/v1/reward-models/tiny/activate", "/v1/reward-models/tiny/reload"):
            assert (await c.post(url, json={"version": 1}, headers=PLAIN)).status_code == 403
        job = {"kind": "score", "judge": "loop", "source": {"path": "items.jsonl"}}
        assert (await c.post("/v1/jobs", json=job, headers=PLAIN)).status_code == 403
        assert (await c.post("/v1/rubrics", json=_new_rubric(), headers=ADMIN)).status_code == 201
        # An admin key is also a key: it may do what a plain one may.
        assert (await c.get("/v1/rubrics/peds-triage", headers=ADMIN)).status_code == 200
        assert (
            await c.post("/v1/rubrics", json=_new_rubric(), headers={"authorization": "Bearer x"})
        ).status_code == 401


async def test_with_plain_keys_and_no_admin_key_nobody_may_publish(make_client: AppClient) -> None:
    async with make_client(api_keys=SecretStr("plain-key")) as c:
        refused = await c.post("/v1/rubrics", json=_new_rubric(), headers=PLAIN)
        assert refused.status_code == 403
        assert "RJ_ADMIN_KEYS" in refused.json()["error"]["message"]


async def test_latest_resolves_the_same_on_every_replica(make_client: AppClient) -> None:
    async with make_client(rubric_refresh_s=0.1) as a, make_client(rubric_refresh_s=0.1) as b:
        assert (await a.post("/v1/rubrics", json=_new_rubric(version=1))).status_code == 201
        assert (await a.post("/v1/rubrics", json=_new_rubric(version=2, anchor="第二版"))).status_code == 201
        latest: dict[str, Any] = {}
        for _ in range(100):  # bounded: at most ~10 s, normally one refresh (0.1 s)
            latest = (await b.get("/v1/rubrics/peds-triage")).json()
            if latest.get("ref") == "peds-triage@2":
                break
            await asyncio.sleep(0.1)
        assert latest.get("ref") == "peds-triage@2"
        assert latest["hash"] == (await a.get("/v1/rubrics/peds-triage")).json()["hash"]


async def test_while_the_store_is_down_its_routes_are_503_with_retry_after_and_scores_stay_answered(
    judges_file: Path, tmp_path: Path
) -> None:
    # A port nothing listens on: the store is "down" without touching any running server.
    settings = Settings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none",
        judges_file=judges_file,
        spool_dir=tmp_path / "spool",
        write_flush_timeout_s=0.2,
        _env_file=None,  # type: ignore[call-arg]
    )
    async with running(create_app(settings)) as c:
        down = await c.get("/v1/verdicts/0123abcd")
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] == "5"
        assert down.json()["error"]["type"] == "StoreUnavailable"
        scored = await c.post("/v1/score", json=score_body(sample(0, response="请马上去急诊。")))
        assert scored.status_code == 200, scored.text
        assert scored.json()["usage"]["pending_writes"] == 1
        verdict_id = scored.json()["results"][0]["verdict_id"]
    # Shut down with the store still down: the answered verdict is in the spool, to be replayed.
    spooled = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "spool").glob("verdicts-*.jsonl"))
    assert verdict_id in spooled


async def test_no_keys_configured_leaves_admin_routes_open(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/rubrics", json=_new_rubric())).status_code == 201
