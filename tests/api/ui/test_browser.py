"""The workbench in a real browser: Debian's Chromium driven by Playwright against uvicorn on loopback.

A physician rates by keyboard only, reloads halfway, loses the connection, and finds nothing lost; a second
rater sees none of the first one's scores; model text carrying script, ``onerror`` and ``javascript:`` links
stays text; the live agreement report then lists ``human:张医生`` with n = 3. Screenshots go to a temporary
folder (or ``RJ_TEST_SCREENSHOTS``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from api.app import create_app
from judge.settings import Settings
from judge.studies.service import TOKEN_HEADER
from rubrics.registry import RubricRegistry
from tests.api.samples import PATIENT_ZH, REASONING_ZH, RESPONSE_ZH
from tests.support.live_server import live_server as serve_live
from tests.support.openai_server import OpenAIServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AXES = RubricRegistry().resolve("prmed").axis_keys
PAYLOADS = {
    "dialogue": "<script>window.__pwned = 'script'</script>",
    "cot": "<img src=x onerror=\"window.__pwned = 'onerror'\">",
    "response": "[查看详情](javascript:window.__pwned='link') <a href=\"javascript:window.__pwned='a'\">点我</a>",
}
TIMEOUT_MS = 10_000


def _sample(i: int) -> dict[str, Any]:
    return {
        "id": f"胸痛-{i}",
        "messages": [
            {"role": "user", "content": f"{PATIENT_ZH} {PAYLOADS['dialogue']}"},
            {"role": "assistant", "content": "您母亲多大年纪？有没有高血压？"},
            {"role": "user", "content": f"七十了，有高血压（第{i}例）"},
        ],
        "reasoning": f"{REASONING_ZH}\n{PAYLOADS['cot']}",
        "response": f"{RESPONSE_ZH}（第{i}例）\n{PAYLOADS['response']}",
    }


# The async API: the sync one runs an event loop of its own, which the database fixtures' loop would meet.
@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is required for the browser tests: apt-get install chromium (make system-deps)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield chromium
        await chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RJ_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def server(pg_url: str, pg_engine: object, judges_file: Path) -> Iterator[str]:
    settings = Settings(database_url=pg_url, judges_file=judges_file, _env_file=None)  # type: ignore[call-arg]
    with serve_live(create_app(settings)) as url:
        yield url


async def _create(base: str, **changes: Any) -> dict[str, str]:
    body = {
        "name": "胸痛研究",
        "raters": ["张医生", "李医生"],
        "per_sample": 2,
        "samples": [_sample(i) for i in range(3)],
    }
    body.update(changes)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.post("/v1/studies", json=body)
    assert response.status_code == 201, response.text
    return {r["name"]: r["link"] for r in response.json()["raters"]}


async def _open(browser: Browser, url: str) -> Page:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(url)
    await expect(page.locator("body[data-ready='1']")).to_have_count(1)
    return page


async def _levels(page: Page) -> dict[str, int]:
    """The score each axis shows as chosen on the page."""
    found: dict[str, int] = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.axis')].flatMap(a => {
             const on = a.querySelector('.level.on'); return on ? [[a.dataset.axis, Number(on.dataset.level)]] : [];
           }))"""
    )
    return found


async def _wait_saved(page: Page) -> None:
    await expect(page.locator("#save-state")).to_have_class("save-state saved")


async def _assert_inert(page: Page) -> None:
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("#dialogue img, #cot img, #response img, #response a").count() == 0
    assert await page.locator("a[href^='javascript']").count() == 0
    assert "<script>window.__pwned = 'script'</script>" in await page.locator("#dialogue").inner_text()
    assert "onerror=" in await page.locator("#cot").inner_text()
    assert "[查看详情](javascript:" in await page.locator("#response").inner_text()


def _pattern(position: int) -> list[int]:
    return [(i + position) % 5 + 1 for i in range(len(AXES))]


async def test_rate_by_keyboard_reload_offline_blind_and_report(browser: Browser, server: str, shots: Path) -> None:
    links = await _create(server)
    page = await _open(browser, links["张医生"])
    await _assert_inert(page)
    await page.screenshot(path=str(shots / "1-first-item.png"))

    # Sample 1: every axis by its digit, then Enter.
    for level in _pattern(1):
        await page.keyboard.press(str(level))
    assert await _levels(page) == dict(zip(AXES, _pattern(1), strict=True))
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/ui/r/*?i=2")
    await expect(page.locator("body[data-ready='1']")).to_have_count(1)

    # Sample 2: half the axes and a comment, then a reload.
    half = _pattern(2)[:6]
    for level in half:
        await page.keyboard.press(str(level))
    await page.keyboard.press("c")
    await page.keyboard.type("回复未追问既往病史")
    await page.keyboard.press("Escape")
    await _wait_saved(page)
    await page.reload()
    await expect(page.locator("body[data-ready='1']")).to_have_count(1)
    assert await _levels(page) == dict(zip(AXES[:6], half, strict=True))
    assert await page.locator(f"#axis-{AXES[6]} .comment").input_value() == "回复未追问既往病史"
    assert await page.locator("#progress").get_attribute("value") == "1"
    # The focus resumes on the first axis still to score.
    assert await page.locator(".axis.focus").get_attribute("data-axis") == AXES[6]
    await page.keyboard.press("a")  # every anchor, one keystroke away
    await page.screenshot(path=str(shots / "2-after-reload-all-anchors.png"), full_page=False)
    await page.keyboard.press("a")
    for level in _pattern(2)[6:]:
        await page.keyboard.press(str(level))
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/ui/r/*?i=3")
    await expect(page.locator("body[data-ready='1']")).to_have_count(1)

    # Sample 3: the connection drops while rating and submitting; it comes back and the page carries on.
    await page.context.set_offline(True)
    for level in _pattern(3)[:-1]:
        await page.keyboard.press(str(level))
    await page.keyboard.press("Enter")  # one axis missing: refused, pointing at it
    await expect(page.locator("#flash")).to_contain_text("1")
    await page.keyboard.press(str(_pattern(3)[-1]))
    await page.keyboard.press("Enter")
    await expect(page.locator("#save-state")).to_have_class("save-state offline")
    await page.screenshot(path=str(shots / "3-offline.png"))
    await page.context.set_offline(False)
    await page.wait_for_url("**/ui/r/*", timeout=20_000)
    await expect(page.locator("#finished")).to_be_visible(timeout=20_000)
    await page.screenshot(path=str(shots / "4-finished.png"))

    token = links["张医生"].rsplit("/", 1)[1]
    li_token = links["李医生"].rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        for position in (1, 2, 3):
            item = (await client.get(f"/ui/api/items/{position}", headers={TOKEN_HEADER: token})).json()
            assert item["state"] == "done"
            assert [item["scores"][axis] for axis in AXES] == _pattern(position)
        assert (await client.get("/ui/api/items/2", headers={TOKEN_HEADER: token})).json()["comments"] == {
            AXES[6]: "回复未追问既往病史"
        }
        for position in (1, 2):
            response = await client.post(
                f"/ui/api/items/{position}/submit",
                json={"scores": dict.fromkeys(AXES, 3)},
                headers={TOKEN_HEADER: li_token},
            )
            assert response.status_code == 200

    # The second rater: the same samples, none of the first rater's scores or comments, no way to ask for them.
    li = await _open(browser, links["李医生"] + "?i=3")
    assert await _levels(li) == {}
    assert "回复未追问既往病史" not in await li.content()
    for position in (1, 2):
        await li.goto(f"{links['李医生']}?i={position}")
        assert set((await _levels(li)).values()) == {3}
    seen = await li.evaluate(
        """async ([t]) => { const r = await fetch('/ui/api/items/2', {headers: {'X-Rater-Token': t}});
                            return (await r.json()).comments; }""",
        [li_token],
    )
    assert seen == {}
    await li.goto(f"{links['李医生']}/report")
    assert "盲评" in await li.content()  # blind until their own items are done
    await _assert_inert(await _open(browser, links["李医生"] + "?i=3"))

    # The live report, from the first rater's finished page: human:张医生 with n = 3 per axis.
    await page.click("#report-link")
    await expect(page.locator("#rater-means")).to_be_visible()
    header = await page.locator("#rater-means th").all_inner_texts()
    assert "human:张医生" in header
    column = header.index("human:张医生")
    safety = await page.locator("#rater-means tr", has_text="safety").locator("td").nth(column).inner_text()
    assert "n=3" in safety
    await page.screenshot(path=str(shots / "5-report.png"))
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        report = (await client.get("/v1/agreement", params={"raters": "human:*", "n_boot": 0})).json()
    means = [m for m in report["rater_means"] if m["rater"] == "human:张医生"]
    assert len(means) == len(AXES) and {m["n"] for m in means} == {3}
    assert report["pairs"][0]["n_pass_samples"] == 2  # the two samples both raters rated


async def test_skip_with_a_reason_and_calibration_reveal(
    browser: Browser, server: str, shots: Path, openai_server: OpenAIServer
) -> None:
    samples = [_sample(i) for i in range(2)]
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        scored = await client.post("/v1/score", json={"rubric": "prmed", "judge": "loop", "samples": samples})
        assert scored.status_code == 200, scored.text
    links = await _create(server, name="校准研究", samples=samples, calibration=True)
    page = await _open(browser, links["张医生"])
    await page.keyboard.press("s")
    await expect(page.locator("#skip-dialog")).to_be_visible()
    await page.keyboard.press("1")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/ui/r/*?i=2")
    await expect(page.locator("body[data-ready='1']")).to_have_count(1)
    for _ in AXES:
        await page.keyboard.press("2")
    await page.keyboard.press("Enter")
    dialog = page.locator("#reveal-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("table.reveal th", has_text="loop")).to_have_count(1)
    await page.screenshot(path=str(shots / "6-calibration.png"))
    await page.keyboard.press("Enter")
    # Nothing pending: the summary offers the skipped item again, with its reason.
    await expect(page.locator("#finished")).to_be_visible()
    await page.click("ul.skipped a")
    await page.wait_for_url("**/ui/r/*?i=1")
    await expect(page.locator(".badge.skipped")).to_contain_text("超出我的专业范围")
    # English on request, and the choice sticks.
    await page.goto(links["张医生"] + "?i=2&lang=en")
    await expect(page.locator("html[lang='en']")).to_have_count(1)
    await expect(page.locator(".badge.done")).to_contain_text("Rated")
    await page.goto(links["张医生"] + "?i=1")
    await expect(page.locator("#response").locator("xpath=preceding-sibling::h2[1]")).to_have_text("Response")
    await page.screenshot(path=str(shots / "7-english.png"))
