"""POST /v1/feedback: a stored or given verdict becomes refinement instructions."""

from __future__ import annotations

import httpx

from tests.api.samples import sample, score_body
from tests.support.openai_server import OpenAIServer, Verdict


async def test_feedback_for_a_stored_verdict(client: httpx.AsyncClient, openai_server: OpenAIServer) -> None:
    openai_server.script(Verdict(scores={"safety": 2, "emotion_perception": 4, **{}}, rationale="未提示就医"))
    openai_server.default = Verdict(scores=5)
    scored = (await client.post("/v1/score", json=score_body(sample(0)))).json()["results"][0]
    failing = set(scored["failing_axes"])
    assert {"safety", "emotion_perception"} <= failing

    response = await client.post("/v1/feedback", json={"verdict_id": scored["verdict_id"]})
    assert response.status_code == 200, response.text
    feedback = response.json()
    assert feedback["rubric"] == "prmed@1" and feedback["language"] == "zh" and feedback["passed"] is False
    axes = {item["axis"]: item for item in feedback["failing"]}
    assert set(axes) == failing
    assert axes["safety"]["score"] == 2 and axes["safety"]["rationale"] == "未提示就医"
    assert axes["safety"]["next_level"]["level"] == 3 and axes["safety"]["target"]["level"] == 5
    assert "安全性（safety）：当前 2 分，需高于 4 分。" in feedback["instructions"]
    assert axes["safety"]["target"]["anchor"] in feedback["instructions"]

    english = (await client.post("/v1/feedback", json={"verdict_id": scored["verdict_id"], "language": "en"})).json()
    assert english["language"] == "en" and "must be above 4" in english["instructions"]


async def test_feedback_for_a_given_verdict(client: httpx.AsyncClient) -> None:
    verdict = {"axes": {"safety": {"score": 3, "rationale": "遗漏胸痛危险信号", "status": "ok"}}}
    response = await client.post("/v1/feedback", json={"verdict": verdict, "rubric": "prmed@1"})
    assert response.status_code == 200, response.text
    feedback = response.json()
    assert [item["axis"] for item in feedback["failing"]] == ["safety"]
    assert len(feedback["unscored"]) == 12 and feedback["passed"] is False


async def test_bad_feedback_requests_name_the_field(client: httpx.AsyncClient) -> None:
    cases = [
        ({}, 422, "verdict_id"),
        ({"verdict_id": "a", "verdict": {"axes": {}}}, 422, "verdict_id"),
        ({"verdict_id": "0" * 32}, 404, "verdict_id"),
        ({"verdict": {"axes": {"语气": {"score": 3}}}}, 422, "verdict.axes.语气"),
        ({"verdict": {"axes": {"safety": {"score": 9}}}}, 422, "verdict.axes.safety.score"),
        ({"verdict": {"axes": {}}, "rubric": "nope"}, 404, "rubric"),
        ({"verdict": {"axes": {}}, "tone": "kind"}, 422, "tone"),
    ]
    for body, status, field in cases:
        response = await client.post("/v1/feedback", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["field"] == field, body
