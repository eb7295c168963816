"""Report files: JSON, PNG figures, the self-contained HTML page (rendered in headless Chromium), the terminal."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from judge.agreement import report as report_module
from judge.agreement.report import (
    AgreementReport,
    ReportFiles,
    bars_png,
    terminal_table,
    terminal_tables,
    write_report,
)
from judge.agreement.service import compute_agreement
from rubrics.schema import Rubric
from tests.judge.agreement.conftest import synthetic_scores, to_rows

RATERS = ["judge:deepseek", "human:张医生"]
PNG = b"\x89PNG\r\n\x1a\n"
# Written into a copy of the page: after load, it records what the browser actually rendered.
PROBE = """<script>
window.addEventListener("load", () => {
  const cells = (sel) => [...document.querySelectorAll(sel)].map((c) => c.textContent.trim());
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    images: [...document.images].map((i) => ({id: i.id, w: i.naturalWidth, h: i.naturalHeight, done: i.complete})),
    axisRows: cells("#axis-table tbody tr td.key"),
    axisTitles: cells("#axis-table tbody tr td.title"),
    pairRows: document.querySelectorAll(".pair-table tbody tr").length,
    tableHeight: document.getElementById("axis-table").getBoundingClientRect().height,
  });
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def agreement(rubric: Rubric) -> AgreementReport:
    scores = synthetic_scores(300, 2, len(rubric.axes), seed=4, missing=0.1)
    return compute_agreement(to_rows(scores, rubric, RATERS), rubric, RATERS, n_boot=50, seed=0)


@pytest.fixture(scope="module")
def written(agreement: AgreementReport, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return write_report(agreement, tmp_path_factory.mktemp("agreement"))


def test_files_are_written_and_json_round_trips(agreement: AgreementReport, written: ReportFiles) -> None:
    assert AgreementReport.model_validate_json(written.json_path.read_text(encoding="utf-8")) == agreement
    assert [p.name for p in written.figures] == ["agreement_bars.png", "confusion_0.png"]
    assert all(p.read_bytes().startswith(PNG) for p in written.figures)
    page = written.html_path.read_text(encoding="utf-8")
    assert "安全性" in page and "human:张医生" in page
    # Self-contained: figures are data URIs and nothing is fetched from elsewhere.
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_terminal_table_shows_every_axis(agreement: AgreementReport) -> None:
    console = Console(record=True, width=260)
    console.print(terminal_table(agreement))
    text = console.export_text()
    for axis in agreement.axes:
        assert axis.key in text and axis.title_zh in text
    assert "overall" in text and "ICC(2,1)" in text


def test_the_cli_tables_fit_100_columns_and_n_agrees_with_the_title(agreement: AgreementReport) -> None:
    console = Console(record=True, width=100)
    for table in terminal_tables(agreement):
        console.print(table)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100 and "…" not in text  # nothing cut off
    for metric in ("α ord", "ICC(2,k)", "QWK", "±1", "pass F1"):
        assert metric in text
    overall = agreement.group_overall.n_units
    assert f"n={overall}" in text
    assert all(line.split()[1] == str(overall) for line in lines if line.strip().startswith("overall"))


def test_figures_fall_back_without_a_cjk_font(agreement: AgreementReport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_module, "cjk_font", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = bars_png(agreement)
    assert png.startswith(PNG)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is required for this test: apt-get install chromium")


def test_html_page_renders_in_headless_chromium(
    agreement: AgreementReport, written: ReportFiles, tmp_path: Path
) -> None:
    page = written.html_path.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probed.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output (exit {done.returncode}): {done.stderr[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["axisRows"] == [a.key for a in agreement.axes] + ["overall"]
    assert probe["axisTitles"][::2][:13] == [a.title_zh for a in agreement.axes]
    assert probe["pairRows"] == len(agreement.axes) + 1
    assert probe["tableHeight"] > 14 * 10
    assert [i["id"] for i in probe["images"]] == ["fig-bars", "confusion-0"]
    for image in probe["images"]:
        assert image["done"] and image["w"] > 300 and image["h"] > 200, image
