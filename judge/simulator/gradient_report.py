"""The perturbation gradient report: per level, pass rate and per-axis means with bootstrap CIs, the drop from
the baseline level (``formal``: the card's headline figure) with a paired test on the same cases; written as
JSON, a PNG figure and one self-contained bilingual HTML page.

Paired tests: McNemar's exact test on pass/fail (the discordant cases, ``scipy.stats.binomtest``) and the
Wilcoxon signed-rank test on rewards. Intervals are percentile bootstrap intervals over cases
(:mod:`judge.agreement.bootstrap`); the drop's interval resamples the paired differences.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from judge.agreement.bootstrap import bootstrap, percentile_ci
from judge.agreement.report import (
    Estimate,
    MaybeFloat,
    chart_fonts,
    cjk_font,
    figure_png,
    format_estimate,
    new_figure,
    png_data_uri,
)
from rubrics.schema import Rubric

LEVEL_TITLES = {
    "formal": ("规范", "formal"),
    "mild": ("轻度扰动", "mild"),
    "moderate": ("中度扰动", "moderate"),
    "heavy": ("重度扰动", "heavy"),
}


class AxisTitle(BaseModel):
    key: str
    zh: str
    en: str


class LevelResult(BaseModel):
    """One perturbation level. Drops are baseline minus this level (positive: worse than the baseline)."""

    model_config = ConfigDict(frozen=True)

    level: str
    n: int
    pass_rate: Estimate
    reward: Estimate
    axes: dict[str, Estimate]
    # Paired with the baseline: cases judged (pass/fail) at both levels.
    paired_n: int
    drop_points: Estimate
    reward_drop: Estimate
    axis_drops: dict[str, MaybeFloat]
    # Discordant pairs: passed at the baseline only, and at this level only.
    passed_baseline_only: int
    passed_level_only: int
    mcnemar_p: MaybeFloat = None
    wilcoxon_p: MaybeFloat = None


class GradientReport(BaseModel):
    rubric: str
    judge: str
    policy: str
    perturber: str
    baseline: str
    levels: list[str]
    axes: list[AxisTitle]
    n_cases: int
    n_boot: int
    ci_level: float
    seed: int
    results: list[LevelResult]
    # The headline: pass-rate drop (percentage points) from the baseline to the last level.
    headline_drop_points: MaybeFloat = None

    def level(self, name: str) -> LevelResult:
        return next(r for r in self.results if r.level == name)


def _mean_ci(values: NDArray[np.float64], n_boot: int, seed: int, scale: float = 1.0) -> Estimate:
    if values.size == 0:
        return Estimate()
    x = values.astype(np.float32)

    def statistic(counts: NDArray[np.float32]) -> NDArray[np.float64]:
        return np.asarray((x @ counts) / counts.sum(axis=0), dtype=np.float64)

    value = float(values.mean()) * scale
    if n_boot == 0 or values.size < 2:
        return Estimate(value=value)
    low, high = percentile_ci(bootstrap(statistic, values.size, n_boot, seed))
    return Estimate(value=value, low=float(low) * scale, high=float(high) * scale)


def _column(rows: Sequence[dict[str, Any]], level: str, key: str, axis: str | None = None) -> list[Any]:
    out: list[Any] = []
    for row in rows:
        record = row["levels"].get(level)
        if record is None:
            out.append(None)
        elif axis is not None:
            out.append(record["scores"].get(axis))
        else:
            out.append(record.get(key))
    return out


def _present(values: Sequence[Any]) -> NDArray[np.float64]:
    return np.asarray([float(v) for v in values if v is not None], dtype=np.float64)


def _paired(a: Sequence[Any], b: Sequence[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    pairs = [(float(x), float(y)) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return np.asarray([p[0] for p in pairs]), np.asarray([p[1] for p in pairs])


def compute_gradient(
    rows: Sequence[dict[str, Any]],
    rubric: Rubric,
    levels: Sequence[str],
    *,
    judge: str,
    policy: str,
    perturber: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> GradientReport:
    """The report from collected rows (:func:`judge.simulator.gradient.collect_gradient`)."""
    from scipy import stats

    baseline = levels[0]
    keys = rubric.axis_keys
    base_pass = _column(rows, baseline, "passed")
    base_reward = _column(rows, baseline, "reward")
    results = []
    for index, level in enumerate(levels):
        s = seed + 1000 * index
        passed = _column(rows, level, "passed")
        rewards = _column(rows, level, "reward")
        axes = {k: _mean_ci(_present(_column(rows, level, "", axis=k)), n_boot, s + j) for j, k in enumerate(keys)}
        base, this = _paired(base_pass, passed)
        drop = _mean_ci(base - this, n_boot, s + 500, scale=100.0)
        only_base = int(((base == 1) & (this == 0)).sum())
        only_level = int(((base == 0) & (this == 1)).sum())
        mcnemar = None
        if level != baseline:
            discordant = only_base + only_level
            mcnemar = float(stats.binomtest(only_base, discordant, 0.5).pvalue) if discordant else 1.0
        rb, rl = _paired(base_reward, rewards)
        wilcoxon = None
        if level != baseline and rb.size and np.any(rb != rl):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wilcoxon = float(stats.wilcoxon(rb, rl).pvalue)
        axis_drops: dict[str, float | None] = {}
        for k in keys:
            ab, al = _paired(_column(rows, baseline, "", axis=k), _column(rows, level, "", axis=k))
            axis_drops[k] = float((ab - al).mean()) if ab.size else None
        results.append(
            LevelResult(
                level=level,
                n=int(_present(passed).size),
                pass_rate=_mean_ci(_present(passed), n_boot, s + 100, scale=100.0),
                reward=_mean_ci(_present(rewards), n_boot, s + 200),
                axes=axes,
                paired_n=int(base.size),
                drop_points=drop,
                reward_drop=_mean_ci(rb - rl, n_boot, s + 300),
                axis_drops=axis_drops,
                passed_baseline_only=only_base,
                passed_level_only=only_level,
                mcnemar_p=mcnemar,
                wilcoxon_p=wilcoxon,
            )
        )
    return GradientReport(
        rubric=rubric.ref,
        judge=judge,
        policy=policy,
        perturber=perturber,
        baseline=baseline,
        levels=list(levels),
        axes=[AxisTitle(key=a.key, zh=a.title.zh, en=a.title.en) for a in rubric.axes],
        n_cases=len(rows),
        n_boot=n_boot,
        ci_level=0.95,
        seed=seed,
        results=results,
        headline_drop_points=results[-1].drop_points.value if len(results) > 1 else None,
    )


# -- files ----------------------------------------------------------------------------------------------------


def gradient_png(report: GradientReport) -> bytes:
    """Left: pass rate by level with 95% CI bars. Right: per-axis mean score by level."""
    chinese = cjk_font() is not None
    with chart_fonts():
        fig = new_figure(11, 4.5)
        left, right = fig.subplots(1, 2)
        x = np.arange(len(report.levels))
        names = [
            f"{LEVEL_TITLES.get(lv, (lv, lv))[0]}\n{lv}" if chinese else LEVEL_TITLES.get(lv, (lv, lv))[1]
            for lv in report.levels
        ]
        values = [r.pass_rate.value if r.pass_rate.value is not None else np.nan for r in report.results]
        low = [
            v - (r.pass_rate.low if r.pass_rate.low is not None else v)
            for v, r in zip(values, report.results, strict=True)
        ]
        high = [
            (r.pass_rate.high if r.pass_rate.high is not None else v) - v
            for v, r in zip(values, report.results, strict=True)
        ]
        left.errorbar(x, values, yerr=[low, high], marker="o", capsize=4, color="#c0392b")
        left.set_xticks(x, names)
        left.set_ylim(0, 100)
        left.set_ylabel("通过率 pass rate (%)" if chinese else "pass rate (%)")
        left.set_title("通过率 · Pass rate" if chinese else "Pass rate")
        titles = {a.key: (a.zh if chinese else a.en) for a in report.axes}
        for key in titles:
            means = [r.axes[key].value if r.axes[key].value is not None else np.nan for r in report.results]
            right.plot(x, means, marker=".", linewidth=1, label=titles[key])
        right.set_xticks(x, names)
        right.set_ylim(1, 5)
        right.set_ylabel("平均分 mean score" if chinese else "mean score")
        right.set_title("各维度平均分 · Axis means" if chinese else "Axis means")
        right.legend(fontsize=7, ncol=2, loc="lower left")
        return figure_png(fig)


_CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","PingFang SC","Microsoft YaHei",system-ui,sans-serif;
margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f5f8}td.key,td.title,th.key{text-align:left}
img{max-width:100%;display:block;margin:1em 0}.scroll{overflow-x:auto}
.ci{color:#777;font-size:11px}.headline{font-size:1.3em}
"""


def _cell(estimate: Estimate, digits: int = 1) -> str:
    if estimate.value is None:
        return "<td>–</td>"
    ci = ""
    if estimate.low is not None and estimate.high is not None:
        ci = f' <span class="ci">[{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]</span>'
    return f"<td>{estimate.value:.{digits}f}{ci}</td>"


def _p(value: float | None) -> str:
    return "–" if value is None else (f"{value:.3g}" if value >= 0.001 else "&lt;0.001")


def render_html(report: GradientReport, png: bytes) -> str:
    """One self-contained page (figure as a data URI), in Chinese and English."""
    esc = html.escape
    level_rows = []
    for r in report.results:
        zh, en = LEVEL_TITLES.get(r.level, (r.level, r.level))
        level_rows.append(
            f'<tr data-level="{esc(r.level)}"><td class="key">{esc(r.level)}</td><td class="title">{esc(zh)}</td>'
            f"<td>{r.n}</td>{_cell(r.pass_rate)}{_cell(r.drop_points)}<td>{r.paired_n}</td>"
            f"<td>{r.passed_baseline_only} / {r.passed_level_only}</td><td>{_p(r.mcnemar_p)}</td>"
            f"{_cell(r.reward, 3)}{_cell(r.reward_drop, 3)}<td>{_p(r.wilcoxon_p)}</td></tr>"
        )
    level_table = (
        '<table id="level-table"><thead><tr><th class="key">level</th><th>扰动强度</th><th>n</th>'
        "<th>通过率 pass rate (%)</th><th>较规范下降 drop (points)</th><th>配对 paired n</th>"
        "<th>仅基线通过 / 仅本级通过</th><th>McNemar p</th><th>平均奖励 reward</th><th>奖励下降 reward drop</th>"
        f"<th>Wilcoxon p</th></tr></thead><tbody>{''.join(level_rows)}</tbody></table>"
    )
    head = "".join(f"<th>{esc(LEVEL_TITLES.get(lv, (lv, lv))[0])}<br>{esc(lv)}</th>" for lv in report.levels)
    axis_rows = []
    for axis in report.axes:
        cells = "".join(_cell(r.axes[axis.key], 2) for r in report.results)
        drop = report.results[-1].axis_drops.get(axis.key)
        axis_rows.append(
            f'<tr data-axis="{esc(axis.key)}"><td class="key">{esc(axis.key)}</td>'
            f'<td class="title">{esc(axis.zh)}</td><td class="title">{esc(axis.en)}</td>{cells}'
            f"<td>{'–' if drop is None else f'{drop:.2f}'}</td></tr>"
        )
    axis_table = (
        '<table id="axis-table"><thead><tr><th class="key">axis</th><th>维度</th><th>title</th>'
        f"{head}<th>下降 drop ({esc(report.levels[-1])})</th></tr></thead><tbody>{''.join(axis_rows)}</tbody></table>"
    )
    drop = report.headline_drop_points
    last = report.levels[-1]
    headline = (
        f"从{LEVEL_TITLES.get(report.baseline, (report.baseline,))[0]}到{LEVEL_TITLES.get(last, (last,))[0]}，"
        f"通过率下降 <b>{drop:.2f}</b> 个百分点 · pass rate drops <b>{drop:.2f}</b> points from "
        f"{esc(report.baseline)} to {esc(last)}"
        if drop is not None
        else "只有一个扰动强度，没有下降可报告 · one level only: no drop to report"
    )
    image = (
        f'<figure><img id="fig-gradient" alt="perturbation gradient" src="{png_data_uri(png)}">'
        "<figcaption>通过率与各维度平均分（95% 置信区间）· "
        "pass rate and axis means (95% CI)</figcaption></figure>"
    )
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>扰动梯度 perturbation gradient – {esc(report.policy)}</title><style>{_CSS}</style></head><body>"
        "<h1>扰动梯度 · Perturbation gradient</h1>"
        f'<p class="headline" id="headline">{headline}</p>'
        f"<p>策略 policy <b>{esc(report.policy)}</b> · 评审 judge <b>{esc(report.judge)}</b> · "
        f"改写 perturber <b>{esc(report.perturber)}</b> · 量表 rubric <b>{esc(report.rubric)}</b> · "
        f"{report.n_cases} 个病例 cases · {report.n_boot} 次自助重抽样 bootstrap resamples · "
        f"{report.ci_level:.0%} CI</p>"
        f'<h2>各扰动强度 · Per level</h2><div class="scroll">{level_table}</div>{image}'
        f'<h2>各维度平均分 · Axis means</h2><div class="scroll">{axis_table}</div>'
        "<p class='ci'>McNemar：通过/未通过的配对精确检验；Wilcoxon：奖励的配对符号秩检验。"
        "McNemar: exact paired test on pass/fail; Wilcoxon: signed-rank test on paired rewards.</p>"
        "</body></html>"
    )


class GradientFiles(BaseModel):
    json_path: Path
    png_path: Path
    html_path: Path


def write_gradient(report: GradientReport, out_dir: Path) -> GradientFiles:
    """``gradient.json``, ``gradient.png`` and the self-contained ``gradient.html`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path, html_path = out_dir / "gradient.json", out_dir / "gradient.png", out_dir / "gradient.html"
    json_path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    png = gradient_png(report)
    png_path.write_bytes(png)
    html_path.write_text(render_html(report, png), encoding="utf-8")
    return GradientFiles(json_path=json_path, png_path=png_path, html_path=html_path)


def level_summary(report: GradientReport) -> list[tuple[str, str, str, str]]:
    """(level, pass rate, drop, McNemar p) for the terminal."""
    return [
        (
            r.level,
            format_estimate(r.pass_rate, 1),
            format_estimate(r.drop_points, 1),
            _p(r.mcnemar_p).replace("&lt;", "<"),
        )
        for r in report.results
    ]
