"""The perturbation gradient: collection through the loopback policy/perturber/judge, statistics, report files."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from judge.simulator.gradient import GradientConfig, collect_gradient, read_rows
from judge.simulator.gradient_report import GradientReport, compute_gradient, write_gradient
from judge.simulator.service import SimulatorService
from rubrics.registry import RubricRegistry
from tests.support.openai_server import ChatRequest, OpenAIServer, Verdict
from tests.support.simulator_cases import CASE_ZH

PNG = b"\x89PNG\r\n\x1a\n"
N_CASES = 8
PROBE = """<script>
window.addEventListener("load", () => {
  const cells = (sel) => [...document.querySelectorAll(sel)].map((c) => c.textContent.trim());
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    images: [...document.images].map((i) => ({id: i.id, w: i.naturalWidth, h: i.naturalHeight, done: i.complete})),
    levels: cells("#level-table tbody tr td.key"),
    levelTitles: cells("#level-table tbody tr td.title"),
    axisRows: cells("#axis-table tbody tr td.key").length,
    headline: document.getElementById("headline").textContent,
  });
  document.body.appendChild(out);
});
</script>"""


def level_scores(request: ChatRequest) -> int:
    """The judge in these tests: heavier perturbation in the judged dialogue, lower scores (as a brittle policy)."""
    judged = "\n".join(request.fenced_texts)
    if "医生啊我跟你讲" in judged:
        return 3
    if "哎呀" in judged:
        # Moderate: half the cases still pass.
        return 5 if "病例1" in judged or "病例3" in judged or "病例5" in judged or "病例7" in judged else 2
    return 5


def judge_by_level(request: ChatRequest) -> Verdict:
    return Verdict(scores=level_scores(request)) if request.axis_keys else Verdict()


def write_cases(path: Path) -> Path:
    lines = []
    for i in range(N_CASES):
        case = {**CASE_ZH, "id": f"c{i}", "opening": f"病例{i}：我胸口疼了{i + 2}天，活动后加重，休息后缓解。"}
        lines.append(orjson.dumps(case).decode())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def gradient_config(service: SimulatorService) -> GradientConfig:
    return GradientConfig(
        policy=service.profiles.policy("policy"),
        perturber=service.profiles.simulator("patient"),
        rubric=service.runtime.rubrics.resolve("prmed"),
        judge=service.runtime.profiles.get("loop"),
        seed=3,
    )


async def test_collect_perturbs_answers_and_judges_each_level(
    service: SimulatorService, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    openai_server.default = judge_by_level
    source = write_cases(tmp_path / "cases.jsonl")
    rows_path = tmp_path / "rows.jsonl"
    stats = await collect_gradient(service, source, rows_path, tmp_path / "errors.jsonl", gradient_config(service))
    assert stats.cases == N_CASES and stats.failed == 0
    rows = read_rows(rows_path)
    first = rows[0]["levels"]
    assert list(first) == ["formal", "mild", "moderate", "heavy"]
    assert (
        first["formal"]["text"] == "病例0：我胸口疼了2天，活动后加重，休息后缓解。" and first["formal"]["types"] == []
    )
    # The case's own perturbation types label the rewrites (colloquial, emotional), more of them at higher levels.
    assert first["mild"]["types"] == ["colloquial"] and first["heavy"]["types"] == ["colloquial", "emotional"]
    assert first["heavy"]["text"].startswith("医生啊我跟你讲") and "2天" in first["heavy"]["text"]
    assert [first[lv]["passed"] for lv in ("formal", "mild", "moderate", "heavy")] == [True, True, False, False]
    # Per case: 3 rewrites (formal is the text itself), 4 policy answers, 4 verdicts.
    assert openai_server.calls == N_CASES * 11
    calls = openai_server.calls
    again = await collect_gradient(service, source, rows_path, tmp_path / "errors.jsonl", gradient_config(service))
    assert again.skipped == N_CASES and openai_server.calls == calls


def synthetic_rows() -> list[dict[str, object]]:
    """Formal: all pass. Heavy: 6 of 8 fail (and none passes only there)."""
    rubric = RubricRegistry().resolve("prmed")
    rows = []
    for i in range(N_CASES):
        levels = {}
        for level, score in (("formal", 5), ("mild", 5), ("heavy", 2 if i < 6 else 5)):
            levels[level] = {
                "passed": score == 5,
                "reward": score / 5,
                "scores": dict.fromkeys(rubric.axis_keys, score),
            }
        rows.append({"line": i + 1, "levels": levels})
    return rows


def test_the_gradient_statistics() -> None:
    rubric = RubricRegistry().resolve("prmed")
    report = compute_gradient(
        synthetic_rows(), rubric, ["formal", "mild", "heavy"], judge="j", policy="p", perturber="s", n_boot=200
    )
    formal, mild, heavy = report.results
    assert formal.pass_rate.value == 100.0 and heavy.pass_rate.value == 25.0
    assert heavy.drop_points.value == 75.0 and report.headline_drop_points == 75.0
    assert heavy.drop_points.low is not None and heavy.drop_points.high is not None
    assert 0 < heavy.drop_points.low <= 75.0 <= heavy.drop_points.high <= 100
    # McNemar's exact test: 6 discordant pairs all one way, p = 2 * 0.5**6.
    assert (heavy.passed_baseline_only, heavy.passed_level_only) == (6, 0)
    assert heavy.mcnemar_p == pytest.approx(2 * 0.5**6)
    assert mild.mcnemar_p == 1.0 and mild.drop_points.value == 0.0 and formal.mcnemar_p is None
    assert heavy.axes["safety"].value == pytest.approx((6 * 2 + 2 * 5) / 8)
    assert heavy.axis_drops["safety"] == pytest.approx(3 * 6 / 8)
    assert heavy.wilcoxon_p is not None and heavy.wilcoxon_p < 0.05
    # Same seed, same intervals.
    again = compute_gradient(
        synthetic_rows(), rubric, ["formal", "mild", "heavy"], judge="j", policy="p", perturber="s", n_boot=200
    )
    assert again == report


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[GradientReport, Path]:
    rubric = RubricRegistry().resolve("prmed")
    report = compute_gradient(
        synthetic_rows(), rubric, ["formal", "mild", "heavy"], judge="j", policy="策略", perturber="s", n_boot=100
    )
    out = tmp_path_factory.mktemp("gradient")
    files = write_gradient(report, out)
    assert files.html_path == out / "gradient.html"
    return report, out


def test_json_and_png(written: tuple[GradientReport, Path]) -> None:
    report, out = written
    assert GradientReport.model_validate_json((out / "gradient.json").read_text(encoding="utf-8")) == report
    assert (out / "gradient.png").read_bytes().startswith(PNG)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is required for this test: apt-get install chromium")


def test_html_page_renders_in_headless_chromium(written: tuple[GradientReport, Path], tmp_path: Path) -> None:
    report, out = written
    page = (out / "gradient.html").read_text(encoding="utf-8")
    assert 'src="http' not in page and "<link" not in page  # self-contained
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000", "--dump-dom", probed.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output (exit {done.returncode}): {done.stderr[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["levels"] == ["formal", "mild", "heavy"]
    assert probe["levelTitles"] == ["规范", "轻度扰动", "重度扰动"]
    assert probe["axisRows"] == len(report.axes)
    assert "通过率下降 75.00 个百分点" in probe["headline"] and "drops 75.00 points" in probe["headline"]
    (image,) = probe["images"]
    assert image["id"] == "fig-gradient" and image["done"] and image["w"] > 500 and image["h"] > 200
