"""Issue 14 benchmark: what a physician waits for in the rating workbench, and how long a design takes.

One process, the app in-process behind ``httpx.ASGITransport`` (no network: the figures are the service's own
time), on a fresh migrated SQLite file by default or ``--database-url`` (e.g. a PostgreSQL database):
1. design: ``plan`` for 200 samples × 3 raters (k = 2) and 2,000 samples × 10 raters (k = 3);
2. ``POST /v1/studies`` with 200 Chinese samples, 3 raters, k = 2 (400 assignments);
3. per item as the page does it: ``GET /ui/r/<token>?i=`` (the page), ``PUT .../draft`` (an autosave),
   ``POST .../submit`` (13 axes), over every item of one rater;
4. the live report of the study afterwards (``GET /v1/studies/<name>/report``, 200 bootstrap resamples).

    python bench/bench_studies.py [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from api.app import create_app  # noqa: E402
from judge.settings import Settings  # noqa: E402
from judge.store.migrate import upgrade  # noqa: E402
from judge.studies.service import TOKEN_HEADER, plan  # noqa: E402
from rubrics.registry import RubricRegistry  # noqa: E402

AXES = RubricRegistry().resolve("prmed").axis_keys
GOAL_MS = 100.0  # a key press that waits longer than this is felt


def _sample(i: int) -> dict[str, object]:
    return {
        "id": f"样本-{i}",
        "messages": [{"role": "user", "content": f"俺娘这两天心口窝疼得厉害，还老是喘不上气，咋整啊（第{i}例）"}],
        "reasoning": "1. 情绪感知：患者焦急。\n2. 扰动识别：“心口窝”指胸骨下方。" * 20,
        "response": "请立即拨打120或马上去最近医院急诊，路上让她保持休息。" * 10,
    }


def _ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


async def main(database_url: str | None) -> None:
    folder = tempfile.mkdtemp(prefix="rj-bench-studies-")
    url = database_url or f"sqlite+aiosqlite:///{folder}/rj.db"
    await upgrade(url)
    rows: list[tuple[str, str, str]] = []
    for n, r, k in ((200, 3, 2), (2000, 10, 3)):
        start = time.perf_counter()
        plan(n, r, k, 0)
        rows.append((f"design: {n} samples × {r} raters, k={k}", f"{(time.perf_counter() - start) * 1000:.0f} ms", ""))
    app = create_app(Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
            body = {"name": "基准研究", "raters": ["张医生", "李医生", "王医生"], "per_sample": 2,
                    "samples": [_sample(i) for i in range(200)]}  # fmt: skip
            start = time.perf_counter()
            created = await client.post("/v1/studies", json=body)
            created.raise_for_status()
            rows.append(("create: 200 samples, 3 raters, k=2", f"{time.perf_counter() - start:.2f} s", ""))
            token = created.json()["raters"][0]["token"]
            total = created.json()["raters"][0]["assigned"]
            headers = {TOKEN_HEADER: token}
            page, draft, submit = [], [], []
            for i in range(1, total + 1):
                start = time.perf_counter()
                (await client.get(f"/ui/r/{token}?i={i}")).raise_for_status()
                page.append(time.perf_counter() - start)
                start = time.perf_counter()
                saved = await client.put(f"/ui/api/items/{i}/draft", json={"scores": {"safety": 3}}, headers=headers)
                saved.raise_for_status()
                draft.append(time.perf_counter() - start)
                start = time.perf_counter()
                scores = {axis: (i + j) % 5 + 1 for j, axis in enumerate(AXES)}
                done = await client.post(f"/ui/api/items/{i}/submit", json={"scores": scores}, headers=headers)
                done.raise_for_status()
                submit.append(time.perf_counter() - start)
            for label, values in (("page (GET /ui/r/…?i=)", page), ("autosave (PUT draft)", draft),
                                  ("submit (13 axes)", submit)):  # fmt: skip
                p50, p95 = _ms(values)
                rows.append((f"{label}, {len(values)} items", f"p50 {p50:.1f} ms · p95 {p95:.1f} ms",
                             "met" if p95 < GOAL_MS else "not met"))  # fmt: skip
            other = created.json()["raters"][1]["token"]
            for i in range(1, total + 1):
                scores = {axis: (i + j + 1) % 5 + 1 for j, axis in enumerate(AXES)}
                await client.post(f"/ui/api/items/{i}/submit", json={"scores": scores}, headers={TOKEN_HEADER: other})
            start = time.perf_counter()
            (await client.get("/v1/studies/基准研究/report")).raise_for_status()
            rows.append(("live report (2 raters rated, 200 resamples)", f"{time.perf_counter() - start:.2f} s", ""))
    table = Table(title=f"rating workbench · {url.split(':')[0]} · load average {os.getloadavg()[0]:.1f}")
    for column in ("measure", "value", f"goal p95 < {GOAL_MS:.0f} ms"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    asyncio.run(main(parser.parse_args().database_url))
