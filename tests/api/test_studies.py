"""Studies over HTTP: the admin routes (API key), the rater's calls (token header), the page's escaping."""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import SecretStr

from judge.studies.service import TOKEN_HEADER
from rubrics.registry import RubricRegistry

AXES = RubricRegistry().resolve("prmed").axis_keys
XSS = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    "[点我](javascript:window.__pwned=3)",
]


def study_body(n: int = 6, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "胸痛研究",
        "rubric": "prmed",
        "raters": ["张医生", "李医生", "王医生"],
        "per_sample": 2,
        "samples": [
            {
                "id": f"样本-{i}",
                "messages": [{"role": "user", "content": f"我妈心口窝疼，喘不上气 {XSS[i % 3]}"}],
                "reasoning": f"思考 {XSS[(i + 1) % 3]}",
                "response": f"请立即就医 {XSS[(i + 2) % 3]}（第{i}例）",
            }
            for i in range(n)
        ],
    }
    body.update(changes)
    return body


def scores(value: int = 4) -> dict[str, int]:
    return dict.fromkeys(AXES, value)


async def _create(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/v1/studies", json=study_body(**changes))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _token(created: dict[str, Any], name: str) -> str:
    return str(next(r["token"] for r in created["raters"] if r["name"] == name))


async def test_create_answers_links_and_status_shows_progress(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    assert [r["assigned"] for r in created["raters"]] == [4, 4, 4]
    assert all(r["link"] == f"http://rj.test/ui/r/{r['token']}" for r in created["raters"])
    token = _token(created, "张医生")
    submitted = await client.post(
        "/ui/api/items/1/submit", json={"scores": scores(), "elapsed": 20}, headers={TOKEN_HEADER: token}
    )
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["progress"] == {"total": 4, "done": 1, "skipped": 0}
    status = (await client.get("/v1/studies/胸痛研究")).json()
    zhang = next(r for r in status["raters"] if r["name"] == "张医生")
    assert (zhang["done"], zhang["pending"], zhang["seconds_median"]) == (1, 3, 20.0)
    assert "token" not in str(status)  # tokens are never shown again
    skipped = await client.post(
        "/ui/api/items/2/skip", json={"reason": "超出我的专业范围"}, headers={TOKEN_HEADER: token}
    )
    assert skipped.status_code == 200
    items = (await client.get("/v1/studies/胸痛研究/items")).json()
    assert len(items) == 12
    mine = {i["position"]: i for i in items if i["rater"] == "human:张医生"}
    assert mine[1]["state"] == "done" and mine[1]["scores"] == scores() and mine[1]["seconds_spent"] == 20
    assert mine[2]["state"] == "skipped" and mine[2]["skip_reason"] == "超出我的专业范围"
    assert mine[1]["sample_id"].startswith("样本-") and mine[1]["first_submitted_at"] is not None


async def test_bad_bodies_name_the_field(client: httpx.AsyncClient) -> None:
    bad = await client.post("/v1/studies", json=study_body(per_sample=1))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "per_sample"
    bad = await client.post("/v1/studies", json=study_body(raters=["张医生", "李 医生"]))
    assert bad.status_code == 422 and bad.json()["error"]["field"].startswith("raters")
    few = await client.post("/v1/studies", json=study_body(n=2, raters=["甲", "乙", "丙", "丁"]))
    assert few.status_code == 422 and few.json()["error"]["field"] == "samples"
    await _create(client)
    again = await client.post("/v1/studies", json=study_body())
    assert again.status_code == 409 and again.json()["error"]["field"] == "name"
    missing = await client.get("/v1/studies/没有")
    assert missing.status_code == 404


async def test_state_changing_calls_need_the_token_header(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    token = _token(created, "张医生")
    no_header = await client.put("/ui/api/items/1/draft", json={"scores": {"safety": 2}})
    assert no_header.status_code == 401 and no_header.json()["error"]["field"] == TOKEN_HEADER
    wrong = await client.post("/ui/api/items/1/submit", json={"scores": scores()}, headers={TOKEN_HEADER: "x" * 32})
    assert wrong.status_code == 401
    # The token in a query string or cookie is not enough for a write.
    query = await client.post(f"/ui/api/items/1/submit?token={token}", json={"scores": scores()})
    assert query.status_code == 401
    partial = await client.post("/ui/api/items/1/submit", json={"scores": {"safety": 3}}, headers={TOKEN_HEADER: token})
    assert partial.status_code == 422 and partial.json()["error"]["field"].startswith("scores.")
    out_of_range = await client.put(
        "/ui/api/items/1/draft", json={"scores": {"safety": 6}}, headers={TOKEN_HEADER: token}
    )
    assert out_of_range.status_code == 422 and out_of_range.json()["error"]["field"] == "scores.safety"
    beyond = await client.get("/ui/api/items/99", headers={TOKEN_HEADER: token})
    assert beyond.status_code == 404


async def test_a_rater_never_reads_another_raters_scores(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    zhang, li = _token(created, "张医生"), _token(created, "李医生")
    other = await _create(client, name="另一研究")
    for position in range(1, 5):
        response = await client.post(
            f"/ui/api/items/{position}/submit",
            json={"scores": scores(5), "comments": {"safety": "张医生的私密评语"}},
            headers={TOKEN_HEADER: zhang},
        )
        assert response.status_code == 200
    for token in (li, _token(other, "张医生")):
        for position in range(1, 5):
            item = (await client.get(f"/ui/api/items/{position}", headers={TOKEN_HEADER: token})).json()
            assert item["scores"] == {} and item["comments"] == {}
            page = await client.get(f"/ui/r/{token}?i={position}")
            assert page.status_code == 200 and "张医生的私密评语" not in page.text
        report = await client.get(f"/ui/r/{token}/report")
        assert report.status_code == 403  # their own work is not done: blind until then


async def test_page_renders_model_text_inert_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    token = _token(created, "张医生")
    page = await client.get(f"/ui/r/{token}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert "<script>window.__pwned" not in html and 'onerror="window' not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html or "&lt;img src=x onerror=" in html
    assert not re.search(r"<a [^>]*href=\"javascript:", html)
    # The only scripts are the page's own file and its JSON config; no external asset at all.
    assert re.findall(r"<script[^>]*>", html) == [
        '<script type="application/json" id="rj-config">',
        f'<script src="/ui/static/rate.js?v={re.search(r"rate.js[?]v=([0-9a-f]+)", html).group(1)}">',  # type: ignore[union-attr]
    ]
    assert "http://" not in html.replace("http://rj.test", "") and "https://" not in html
    assert 'lang="zh-CN"' in html and "患者对话" in html and "情绪感知" in html
    assert "Enter 提交" in html and "built-in method" not in html
    english = await client.get(f"/ui/r/{token}?lang=en")
    assert 'lang="en"' in english.text and "Patient dialogue" in english.text and "Enter submit" in english.text
    assert english.cookies.get("rj_lang") == "en"  # the choice sticks for the next items
    script = await client.get("/ui/static/rate.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text.replace("never innerHTML", "")


async def test_bad_link_is_a_friendly_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/r/not-a-real-token")
    assert page.status_code == 404 and "链接无效" in page.text
    assert (await client.get("/ui/")).status_code == 200


async def test_agreement_includes_study_ratings_at_once_and_closing_freezes_them(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    for name, value in (("张医生", 4), ("李医生", 2), ("王医生", 3)):
        token = _token(created, name)
        for position in range(1, 5):
            response = await client.post(
                f"/ui/api/items/{position}/submit", json={"scores": scores(value)}, headers={TOKEN_HEADER: token}
            )
            assert response.status_code == 200
    report = (await client.get("/v1/agreement", params={"raters": "human:*", "n_boot": 0})).json()
    assert report["raters"] == ["human:张医生", "human:李医生", "human:王医生"]
    assert report["n_samples"] == 6
    means = {(m["rater"], m["axis"]): m for m in report["rater_means"]}
    assert means[("human:张医生", "safety")]["n"] == 4 and means[("human:张医生", "safety")]["mean"] == 4.0
    admin_report = await client.get("/v1/studies/胸痛研究/report", params={"n_boot": 0})
    assert admin_report.status_code == 200 and "human:张医生" in admin_report.text
    rater_report = await client.get(f"/ui/r/{_token(created, '李医生')}/report")
    assert rater_report.status_code == 200 and "human:李医生" in rater_report.text
    assert "script-src" not in rater_report.headers["content-security-policy"]
    closed = await client.post("/v1/studies/胸痛研究/close")
    assert closed.json()["state"] == "closed"
    late = await client.post(
        "/ui/api/items/1/submit", json={"scores": scores(1)}, headers={TOKEN_HEADER: _token(created, "张医生")}
    )
    assert late.status_code == 409 and late.json()["error"]["type"] == "StudyClosed"


async def test_admin_routes_need_the_api_key_and_rater_calls_do_not(make_client: Any) -> None:
    async with make_client(api_keys=SecretStr("admin-key")) as client:
        refused = await client.post("/v1/studies", json=study_body())
        assert refused.status_code == 401
        created = await client.post("/v1/studies", json=study_body(), headers={"Authorization": "Bearer admin-key"})
        assert created.status_code == 201
        token = _token(created.json(), "王医生")
        draft = await client.put("/ui/api/items/1/draft", json={"scores": {"safety": 2}}, headers={TOKEN_HEADER: token})
        assert draft.status_code == 200 and draft.json()["draft"]["scores"] == {"safety": 2}
        # A rater token is no API key.
        assert (
            await client.get("/v1/studies/胸痛研究", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401


def test_both_languages_have_every_string() -> None:
    from api.ui.i18n import STRINGS

    assert set(STRINGS["zh"]) == set(STRINGS["en"])
    assert not set(STRINGS["zh"]) & set(dir({}))  # Jinja's t.<name> would find the dict's method instead


def test_access_logs_do_not_show_rater_tokens() -> None:
    import logging

    from api.ui.routes import RedactRaterLinks

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/ui/r/SeCrEt-Token_123?i=2", "1.1", 200), None,
    )  # fmt: skip
    assert RedactRaterLinks().filter(record)
    assert "SeCrEt" not in record.getMessage() and "/ui/r/***?i=2" in record.getMessage()


async def test_a_rated_item_changed_but_not_resubmitted_says_so(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    token = _token(created, "张医生")
    headers = {TOKEN_HEADER: token}
    await client.post("/ui/api/items/1/submit", json={"scores": scores(4)}, headers=headers)
    page = await client.get(f"/ui/r/{token}?i=1")
    assert "有未提交的修改" not in page.text
    await client.put("/ui/api/items/1/draft", json={"scores": {**scores(4), "safety": 1}}, headers=headers)
    page = await client.get(f"/ui/r/{token}?i=1")
    assert "有未提交的修改" in page.text
    item = (await client.get("/ui/api/items/1", headers=headers)).json()
    assert item["scores"]["safety"] == 4 and item["draft"]["scores"]["safety"] == 1  # the rating is unchanged
