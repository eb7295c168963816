"""The agreement report: a JSON model, PNG figures, one self-contained HTML page and a terminal table."""

from __future__ import annotations

import base64
import functools
import html
import io
import math
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.table import Table

OVERALL = "overall"


def _finite_or_none(value: object) -> object:
    # JSON has no NaN: an undefined metric is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


MaybeFloat = Annotated[float | None, BeforeValidator(_finite_or_none)]


class Estimate(BaseModel):
    """A point estimate with its bootstrap percentile interval; None where undefined."""

    model_config = ConfigDict(frozen=True)

    value: MaybeFloat = None
    low: MaybeFloat = None
    high: MaybeFloat = None


class AxisInfo(BaseModel):
    key: str
    layer: str
    title_zh: str
    title_en: str
    threshold: float


class PairAxis(BaseModel):
    """Two raters on one axis (or ``overall``): metrics and the 5 × 5 confusion matrix (rows rater a)."""

    axis: str
    n: int
    metrics: dict[str, Estimate]
    confusion: list[list[int]]


class PairResult(BaseModel):
    """Two raters on every axis; ``overall`` averages the axes except for the pass metrics, which judge the
    sample-level decision (every axis above its threshold) on samples both raters scored on every axis."""

    rater_a: str
    rater_b: str
    axes: list[PairAxis]
    overall: PairAxis
    pass_confusion: list[list[int]]
    n_pass_samples: int


class GroupAxis(BaseModel):
    """All selected raters on one axis (or ``overall``): alpha over pairable samples, ICC over samples every
    rater scored, and the mean over pairs of the pair metrics."""

    axis: str
    n_units: int
    n_complete: int
    metrics: dict[str, Estimate]


class RaterMean(BaseModel):
    rater: str
    axis: str
    n: int
    mean: MaybeFloat = None


class AgreementReport(BaseModel):
    """Agreement of a set of raters under one rubric, per axis and overall, with bootstrap CIs."""

    rubric_ref: str
    rubric_hash: str
    raters: list[str]
    axes: list[AxisInfo]
    n_samples: int
    n_boot: int
    seed: int
    ci_level: float
    group: list[GroupAxis]
    group_overall: GroupAxis
    pairs: list[PairResult]
    rater_means: list[RaterMean]
    dropped_rows: int = 0
    notes: list[str] = Field(default_factory=list)

    def group_axis(self, axis: str) -> GroupAxis:
        if axis == OVERALL:
            return self.group_overall
        return next(g for g in self.group if g.axis == axis)

    def pair(self, rater_a: str, rater_b: str) -> PairResult:
        for pair in self.pairs:
            if {pair.rater_a, pair.rater_b} == {rater_a, rater_b}:
                return pair
        raise KeyError((rater_a, rater_b))


# --- rendering ---------------------------------------------------------------------------------------------------

# Columns of the per-axis tables: metric key, short label.
TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("alpha_ordinal", "α ord"),
    ("alpha_interval", "α int"),
    ("icc2_1", "ICC(2,1)"),
    ("icc2_k", "ICC(2,k)"),
    ("qwk", "QWK"),
    ("spearman", "ρ"),
    ("kendall", "τ-b"),
    ("exact", "exact"),
    ("within_one", "±1"),
    ("pass_kappa", "pass κ"),
    ("pass_f1", "pass F1"),
    ("gwet_ac2", "AC2"),
    ("pass_pabak", "PABAK"),
)
PAIR_TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("qwk", "QWK"),
    ("alpha_ordinal", "α ord"),
    ("icc2_1", "ICC(2,1)"),
    ("spearman", "ρ"),
    ("kendall", "τ-b"),
    ("exact", "exact"),
    ("within_one", "±1"),
    ("mean_diff", "mean b−a"),
    ("pass_kappa", "pass κ"),
    ("pass_f1", "pass F1"),
    ("gwet_ac2", "AC2"),
    ("pass_pabak", "PABAK"),
)
BAR_METRICS: tuple[str, ...] = ("qwk", "alpha_ordinal", "icc2_1")
# Families known to carry CJK glyphs, tried when fontconfig cannot be asked.
_CJK_FAMILIES = ("CJK", "WenQuanYi", "Source Han", "Noto Sans SC", "YaHei", "SimHei", "PingFang", "Droid Sans Fallback")


def cjk_font() -> str | None:
    """Family name of an installed font with Chinese glyphs, registered with matplotlib; None if none exists."""
    return _cjk_font()


@functools.cache
def _cjk_font() -> str | None:
    from matplotlib import font_manager, ft2font

    paths: list[str] = []
    if shutil.which("fc-list"):
        try:
            listing = subprocess.run(
                ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        paths += sorted({line.split(":")[0].strip() for line in listing.splitlines() if line.strip()})
    paths += [f.fname for f in font_manager.fontManager.ttflist if any(k in f.name for k in _CJK_FAMILIES)]
    for path in paths:
        try:
            if ft2font.FT2Font(path).get_char_index(ord("安")) == 0:
                continue
            font_manager.fontManager.addfont(path)
            return str(font_manager.FontProperties(fname=path).get_name())
        except (OSError, RuntimeError, ValueError):
            continue
    return None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_estimate(estimate: Estimate | None, digits: int = 2) -> str:
    """``0.71 [0.69, 0.73]``; ``–`` where undefined."""
    if estimate is None or estimate.value is None:
        return "–"
    if estimate.low is None or estimate.high is None:
        return _fmt(estimate.value, digits)
    return f"{_fmt(estimate.value, digits)} [{_fmt(estimate.low, digits)}, {_fmt(estimate.high, digits)}]"


def _axis_labels(report: AgreementReport, chinese: bool) -> dict[str, str]:
    labels = {a.key: (a.title_zh if chinese else a.title_en) for a in report.axes}
    labels[OVERALL] = "总体 overall" if chinese else "overall"
    return labels


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (shared by the agreement and perturbation-gradient reports)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Without a CJK font, Chinese rater names draw as boxes; the figure is still worth having.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buffer, format="png", dpi=fig.dpi)
    return buffer.getvalue()


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure at 100 dpi, the size of every report figure's canvas."""
    from matplotlib.figure import Figure as _Figure

    return _Figure(figsize=(width, height), dpi=100, layout="constrained")


def chart_fonts() -> AbstractContextManager[None]:
    """matplotlib settings that draw Chinese labels where a CJK font is installed."""
    import matplotlib as mpl

    # DejaVu Sans first keeps Latin text as usual; the CJK font serves the glyphs DejaVu lacks.
    font = cjk_font()
    families = ["DejaVu Sans", font] if font else ["DejaVu Sans"]
    return mpl.rc_context({"font.family": families, "axes.unicode_minus": False})


def bars_png(report: AgreementReport, metrics: Sequence[str] = BAR_METRICS) -> bytes:
    """Per-axis agreement bars (the group's metrics) with bootstrap CI error bars."""
    import numpy as np

    with chart_fonts():
        labels = _axis_labels(report, chinese=cjk_font() is not None)
        rows = [*report.group, report.group_overall]
        fig = new_figure(max(8.0, 0.75 * len(rows) + 2), 4.8)
        ax = fig.add_subplot()
        x = np.arange(len(rows))
        width = 0.8 / len(metrics)
        for m_index, metric in enumerate(metrics):
            est = [row.metrics.get(metric, Estimate()) for row in rows]
            values = np.array([e.value if e.value is not None else np.nan for e in est])
            low = np.array([e.value - e.low if e.value is not None and e.low is not None else 0.0 for e in est])
            high = np.array([e.high - e.value if e.value is not None and e.high is not None else 0.0 for e in est])
            ax.bar(
                x + (m_index - (len(metrics) - 1) / 2) * width,
                values,
                width,
                yerr=np.vstack([low, high]),
                capsize=2,
                label=dict(TABLE_METRICS).get(metric, metric),
            )
        ax.set_xticks(x, [labels[row.axis] for row in rows], rotation=40, ha="right")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.0)
        ax.set_ylabel("agreement")
        ax.set_title(f"{report.rubric_ref}: {', '.join(report.raters)} ({report.ci_level:.0%} CI)", fontsize=9)
        ax.legend(fontsize=8, ncols=len(metrics))
        ax.grid(axis="y", alpha=0.3)
        return figure_png(fig)


def confusion_png(report: AgreementReport, pair: PairResult) -> bytes:
    """Confusion-matrix heatmaps of one pair: one per axis, the axes pooled, and the sample-level pass decision."""
    import numpy as np

    with chart_fonts():
        labels = _axis_labels(report, chinese=cjk_font() is not None)
        panels: list[tuple[str, list[list[int]], list[str]]] = [
            (labels[row.axis], row.confusion, ["1", "2", "3", "4", "5"]) for row in [*pair.axes, pair.overall]
        ]
        panels.append(("pass (sample)", pair.pass_confusion, ["fail", "pass"]))
        cols = 4
        grid_rows = -(-len(panels) // cols)
        fig = new_figure(3.0 * cols, 2.9 * grid_rows)
        for index, (title, counts, ticks) in enumerate(panels):
            ax = fig.add_subplot(grid_rows, cols, index + 1)
            table = np.asarray(counts, dtype=float)
            totals = table.sum(axis=1, keepdims=True)
            share = np.divide(table, totals, out=np.zeros_like(table), where=totals > 0)
            ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            for (i, j), count in np.ndenumerate(table):
                colour = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=6, color=colour)
            ax.set_xticks(range(len(ticks)), ticks, fontsize=7)
            ax.set_yticks(range(len(ticks)), ticks, fontsize=7)
            ax.set_title(title, fontsize=8)
            if index % cols == 0:
                ax.set_ylabel(pair.rater_a, fontsize=7)
            ax.set_xlabel(pair.rater_b, fontsize=7)
        fig.suptitle(f"{pair.rater_a} (rows) vs {pair.rater_b} (columns), row-normalised colour", fontsize=9)
        return figure_png(fig)


class ReportFiles(BaseModel):
    json_path: Path
    html_path: Path
    figures: list[Path]


def png_data_uri(png: bytes) -> str:
    """A PNG as a data URI, so that an HTML report is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","PingFang SC","Microsoft YaHei",system-ui,sans-serif;
margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f5f8}td.key,td.title,th.key{text-align:left}
tr.overall td{font-weight:bold;background:#fafafa}
img{max-width:100%;display:block;margin:1em 0}.scroll{overflow-x:auto}
.ci{color:#777;font-size:11px}.notes{color:#555;font-size:12px}
"""


def _cell(estimate: Estimate | None) -> str:
    if estimate is None or estimate.value is None:
        return "<td>–</td>"
    ci = ""
    if estimate.low is not None and estimate.high is not None:
        ci = f' <span class="ci">[{_fmt(estimate.low)}, {_fmt(estimate.high)}]</span>'
    return f"<td>{_fmt(estimate.value)}{ci}</td>"


def render_html(report: AgreementReport, figures: Sequence[tuple[str, str, bytes]]) -> str:
    """One self-contained page: summary, per-axis table, pair tables, figures as data URIs (id, caption, png)."""
    esc = html.escape
    titles = {a.key: a for a in report.axes}
    head = "".join(f"<th>{esc(label)}</th>" for _, label in TABLE_METRICS)
    body = []
    for row in [*report.group, report.group_overall]:
        info = titles.get(row.axis)
        zh, en = (info.title_zh, info.title_en) if info else ("总体", "overall")
        cls = ' class="overall"' if row.axis == OVERALL else ""
        cells = "".join(_cell(row.metrics.get(m)) for m, _ in TABLE_METRICS)
        body.append(
            f'<tr data-axis="{esc(row.axis)}"{cls}><td class="key">{esc(row.axis)}</td>'
            f'<td class="title">{esc(zh)}</td><td class="title">{esc(en)}</td>'
            f"<td>{row.n_units}</td><td>{row.n_complete}</td>{cells}</tr>"
        )
    axis_table = (
        '<table id="axis-table"><thead><tr><th class="key">axis</th><th>维度</th><th>title</th>'
        f"<th>n</th><th>n all</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
    images = {fid: (caption, png) for fid, caption, png in figures}

    def image(fid: str) -> str:
        if fid not in images:
            return ""
        caption, png = images[fid]
        return (
            f'<figure><img id="{esc(fid)}" alt="{esc(caption)}" src="{png_data_uri(png)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )

    pair_sections = []
    pair_head = "".join(f"<th>{esc(label)}</th>" for _, label in PAIR_TABLE_METRICS)
    for index, pair in enumerate(report.pairs):
        rows = []
        for pair_row in [*pair.axes, pair.overall]:
            info = titles.get(pair_row.axis)
            zh = info.title_zh if info else "总体"
            cls = ' class="overall"' if pair_row.axis == OVERALL else ""
            cells = "".join(_cell(pair_row.metrics.get(m)) for m, _ in PAIR_TABLE_METRICS)
            rows.append(
                f'<tr data-axis="{esc(pair_row.axis)}"{cls}><td class="key">{esc(pair_row.axis)}</td>'
                f'<td class="title">{esc(zh)}</td><td>{pair_row.n}</td>{cells}</tr>'
            )
        pair_sections.append(
            f'<section class="pair"><h3>{esc(pair.rater_a)} vs {esc(pair.rater_b)}</h3>'
            '<div class="scroll"><table class="pair-table">'
            f'<thead><tr><th class="key">axis</th><th>维度</th><th>n</th>{pair_head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            f"<p>sample-level pass decision: {pair.n_pass_samples} samples scored on every axis by both</p>"
            f"{image(f'confusion-{index}')}</section>"
        )
    means: dict[str, dict[str, RaterMean]] = {}
    for mean in report.rater_means:
        means.setdefault(mean.axis, {})[mean.rater] = mean
    mean_rows = "".join(
        f'<tr><td class="key">{esc(a.key)}</td><td class="title">{esc(a.title_zh)}</td>'
        + "".join(
            f"<td>{_fmt(means[a.key][r].mean)} <span class='ci'>n={means[a.key][r].n}</span></td>"
            for r in report.raters
        )
        + "</tr>"
        for a in report.axes
    )
    mean_table = (
        '<table id="rater-means"><thead><tr><th class="key">axis</th><th>维度</th>'
        + "".join(f"<th>{esc(r)}</th>" for r in report.raters)
        + f"</tr></thead><tbody>{mean_rows}</tbody></table>"
    )
    notes = "".join(f"<li>{esc(note)}</li>" for note in report.notes)
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>评分一致性 agreement – {esc(report.rubric_ref)}</title><style>{_CSS}</style></head><body>"
        f"<h1>评分一致性 · Rater agreement</h1>"
        f"<p>rubric <b>{esc(report.rubric_ref)}</b> ({esc(report.rubric_hash[:12])}), raters "
        f"<b>{esc(', '.join(report.raters))}</b>, {report.n_samples} samples, {report.n_boot} bootstrap resamples, "
        f"{report.ci_level:.0%} CI</p>"
        f'<h2>Per axis (all raters)</h2><div class="scroll">{axis_table}</div>{image("fig-bars")}'
        f'<h2>Mean score per rater</h2><div class="scroll">{mean_table}</div>'
        f"<h2>Pairs</h2>{''.join(pair_sections)}"
        f'<h2>Notes</h2><ul class="notes">{notes}</ul></body></html>'
    )


def write_report(report: AgreementReport, out_dir: Path, *, max_pair_figures: int = 10) -> ReportFiles:
    """Write ``agreement.json``, PNG figures and the self-contained ``agreement.html`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "agreement.json"
    json_path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    figures: list[tuple[str, str, bytes]] = [("fig-bars", "per-axis agreement with bootstrap CIs", bars_png(report))]
    paths = [out_dir / "agreement_bars.png"]
    for index, pair in enumerate(report.pairs[:max_pair_figures]):
        figures.append(
            (f"confusion-{index}", f"confusion matrices: {pair.rater_a} vs {pair.rater_b}", confusion_png(report, pair))
        )
        paths.append(out_dir / f"confusion_{index}.png")
    for path, (_, _, png) in zip(paths, figures, strict=True):
        path.write_bytes(png)
    html_path = out_dir / "agreement.html"
    html_path.write_text(render_html(report, figures), encoding="utf-8")
    return ReportFiles(json_path=json_path, html_path=html_path, figures=paths)


def terminal_table(
    report: AgreementReport, metrics: Sequence[tuple[str, str]] = TABLE_METRICS, *, titles_zh: bool = True
) -> Table:
    """The per-axis table for the terminal (rich): the value, and the CI on a second, dim line.

    Its ``n`` column counts the samples each row's statistics use; the title's ``n`` is the overall row's.
    """
    from rich import box
    from rich.table import Table as _Table

    overall_n = report.group_overall.n_units
    of = f" of {report.n_samples} rated" if report.n_samples != overall_n else ""
    table = _Table(
        title=f"{report.rubric_ref} · {', '.join(report.raters)} · n={overall_n}{of} · {report.ci_level:.0%} CI",
        show_lines=False,
        box=box.SIMPLE_HEAD,
    )
    table.add_column("axis")
    if titles_zh:
        table.add_column("维度")
    table.add_column("n", justify="right")
    for _, label in metrics:
        table.add_column(label, justify="right")
    titles = {a.key: a.title_zh for a in report.axes}
    for row in [*report.group, report.group_overall]:
        cells = []
        for metric, _ in metrics:
            est = row.metrics.get(metric)
            if est is None or est.value is None:
                cells.append("–")
            elif est.low is None or est.high is None:
                cells.append(_fmt(est.value))
            else:
                cells.append(f"{_fmt(est.value)}\n[dim]{_fmt(est.low)}–{_fmt(est.high)}[/dim]")
        style = "bold" if row.axis == OVERALL else None
        names = [row.axis, titles.get(row.axis, "总体")] if titles_zh else [row.axis]
        table.add_row(*names, str(row.n_units), *cells, style=style)
    return table


# The terminal tables in groups that fit 100 columns: reliability, ordinal agreement, the pass decision.
TERMINAL_GROUPS: tuple[tuple[str, ...], ...] = (
    ("alpha_ordinal", "alpha_interval", "icc2_1", "icc2_k"),
    ("qwk", "spearman", "kendall", "exact", "within_one"),
    ("pass_kappa", "pass_f1"),
)


def terminal_tables(report: AgreementReport) -> list[Table]:
    """:func:`terminal_table` split by metric group, each within 100 columns (axis titles are in the HTML)."""
    labels = dict(TABLE_METRICS)
    return [terminal_table(report, [(m, labels[m]) for m in group], titles_zh=False) for group in TERMINAL_GROUPS]
