"""Rubric routes: list, show, register (409 on a reused name@version with other content)."""

from __future__ import annotations

from typing import Any

import httpx

from rubrics.registry import RubricRegistry


def _new_rubric(version: int = 1, anchor: str = "完全忽视患者情绪") -> dict[str, Any]:
    rubric = RubricRegistry().resolve("prmed").model_dump(mode="json")
    rubric.update(name="peds-triage", version=version)
    rubric["axes"] = rubric["axes"][:2]
    rubric["axes"][0]["anchors"]["1"]["zh"] = anchor
    rubric["reward_policy"] = {"weights": {}, "gates": []}
    return rubric


async def test_builtin_rubrics_are_listed_and_shown(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/rubrics")).json()
    refs = {r["ref"] for r in listed}
    assert {"prmed@1", "prmed@2", "prmed-format@1"} <= refs
    shown = (await client.get("/v1/rubrics/prmed")).json()
    assert shown["ref"] == "prmed@2"  # the latest
    assert len(shown["axes"]) == 13
    assert shown["axes"][0]["title"]["zh"]
    assert (await client.get("/v1/rubrics/prmed@2")).json()["hash"] == shown["hash"]
    assert (await client.get("/v1/rubrics/prmed@1")).json()["hash"] != shown["hash"]


async def test_register_then_conflict_then_survive_a_restart(client: httpx.AsyncClient, make_client: Any) -> None:
    created = await client.post("/v1/rubrics", json=_new_rubric())
    assert created.status_code == 201, created.text
    assert created.json()["ref"] == "peds-triage@1"
    again = await client.post("/v1/rubrics", json=_new_rubric())
    assert again.status_code == 201
    conflict = await client.post("/v1/rubrics", json=_new_rubric(anchor="另一种说法"))
    assert conflict.status_code == 409
    assert conflict.json()["error"]["type"] == "RubricConflict"
    await client.post("/v1/rubrics", json=_new_rubric(version=2, anchor="另一种说法"))
    assert (await client.get("/v1/rubrics/peds-triage")).json()["version"] == 2

    async with make_client() as restarted:
        shown = await restarted.get("/v1/rubrics/peds-triage@1")
        assert shown.status_code == 200
        assert shown.json()["axes"][0]["anchors"]["1"]["zh"] == "完全忽视患者情绪"


async def test_builtin_name_and_version_cannot_be_overwritten(client: httpx.AsyncClient) -> None:
    rubric = RubricRegistry().resolve("prmed").model_dump(mode="json")
    rubric["description"]["zh"] = "篡改过的描述"
    assert (await client.post("/v1/rubrics", json=rubric)).status_code == 409


async def test_invalid_rubric_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    rubric = _new_rubric()
    del rubric["axes"][0]["anchors"]["5"]
    resp = await client.post("/v1/rubrics", json=rubric)
    assert resp.status_code == 422
    assert "anchors" in resp.json()["error"]["field"]
