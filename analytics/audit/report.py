"""Audit outputs: verdicts.json / verdicts.csv, report.md and report.html with PNG plots.

Per activation: the measured response against the expected response and the required
envelope (the product curve's steady-state tolerances, ``contract.products``), the mean
response per site of each OEM, the verdict rows, skipped rules and offenders. Sine tests:
Bode and Nyquist plots of the fitted periods. Dispatch chain: FOPDT fits per OEM and site.
:class:`ProgressBar` reports long runs on stderr (tqdm when installed, else plain text).
"""

from __future__ import annotations

import csv
import html
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from matplotlib.figure import Figure

from analytics.audit.run import ActivationResult, AuditResult
from analytics.plots import plot_activation, plot_bode, plot_nyquist
from analytics.rules.base import Context, Params
from analytics.rules.common import expected_response
from analytics.timeseries import SeriesError
from contract.products import CURVES

COLUMNS = (
    "activation",
    "product",
    "rule_id",
    "rule_version",
    "measured",
    "threshold",
    "unit",
    "status",
)
# The report's per-activation tables: the verdict columns, the detail and, where the facts
# mark a figure UNCERTAIN or CONFLICT, the other reading's result beside the verdict.
DETAIL_COLUMNS = (*COLUMNS[2:], "detail", "other_reading")


class ProgressBar:
    """``bar(done, total, label)``: tqdm on stderr if installed, else a plain text line."""

    def __init__(
        self, stream: TextIO | None = None, *, enabled: bool = True, use_tqdm: bool | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._tqdm: Any = None
        if use_tqdm is None:
            use_tqdm = importlib.util.find_spec("tqdm") is not None
        self._use_tqdm = enabled and use_tqdm

    def __call__(self, done: int, total: int, label: str) -> None:
        if not self.enabled or total == 0:
            return
        if self._use_tqdm:
            if self._tqdm is None:
                tqdm = importlib.import_module("tqdm").tqdm
                self._tqdm = tqdm(total=total, file=self.stream, unit="activation")
            bar = self._tqdm
            bar.n = done
            bar.set_description(label[:40])
            bar.refresh()
            if done >= total:
                bar.close()
            return
        width = 30
        filled = int(width * done / total)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label[:40]}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table_text(rows: list[dict[str, object]]) -> str:
    """The summary verdict table as aligned plain text."""
    cells = [list(COLUMNS)] + [[_fmt(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def write_tables(result: AuditResult, out: Path) -> tuple[Path, Path]:
    rows = result.rows()
    js = out / "verdicts.json"
    js.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    cs = out / "verdicts.csv"
    with cs.open("w", newline="", encoding="utf-8") as fh:
        fields = sorted({k for r in rows for k in r} | set(COLUMNS))
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return js, cs


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


def _activation_plot(r: ActivationResult, plots: Path) -> Path | None:
    s = r.series
    if s is None:
        return None
    ctx = Context(s, r.activation.product, Params(period_s=r.activation.period_s))
    try:
        expected = expected_response(ctx)
    except (SeriesError, ValueError):
        expected = None
    envelope = None
    if expected is not None:
        curve = CURVES[r.activation.product]
        lo = expected - curve.under_tolerance * np.abs(expected)
        hi = expected + curve.over_tolerance * np.abs(expected)
        envelope = (lo, hi)
    return plot_activation(
        s.t,
        s.response_mw(),
        plots / f"{_slug(r.activation.activation_id)}-activation.png",
        expected_mw=expected,
        envelope_mw=envelope,
        title=f"{r.activation.activation_id}: {r.activation.product.value} "
        f"{r.activation.test_type.value}",
    )


def _oem_plot(r: ActivationResult, plots: Path) -> Path | None:
    if r.series is None or not r.oem_response:
        return None
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    for oem, curve in r.oem_response.items():
        ax.plot(r.series.t, curve * 1000.0, label=oem)
    ax.set_xlabel("t [s]")
    ax.set_ylabel("mean response per site [kW]")
    ax.grid(visible=True)
    ax.legend(loc="best")
    ax.set_title(f"{r.activation.activation_id}: response per OEM")
    path = plots / f"{_slug(r.activation.activation_id)}-oem.png"
    fig.savefig(path, dpi=100)
    return path


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return out


def write_report(result: AuditResult, out: Path) -> list[Path]:
    """Write verdicts.json/csv, plots/*.png, report.md and report.html into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    written = list(write_tables(result, out))
    rows = result.rows()
    md: list[str] = [f"# FlowerHub activation audit: {result.source}", ""]
    fails = sum(1 for r in rows if r["status"] != "PASS")
    md += [
        f"{len(result.results)} activation(s), {len(rows)} verdict row(s), {fails} not passed.",
        "",
    ]
    if result.method:
        md += ["## Method", "", *(f"- {line}" for line in result.method), ""]
    for r in result.results:
        a = r.activation
        md += [f"## {a.activation_id}", ""]
        md += [
            f"{a.product.value} {a.test_type.value} "
            f"({a.kind}{', detected' if a.detected else ''}), {a.start} .. {a.end}",
            "",
            *(f"- {note}" for note in r.notes),
            *([""] if r.notes else []),
        ]
        for plot in (_activation_plot(r, plots), _oem_plot(r, plots)):
            if plot is not None:
                written.append(plot)
                md += [f"![{plot.stem}](plots/{plot.name})", ""]
        mine = [x for x in rows if x["activation"] == a.activation_id]
        md += _md_table(
            list(DETAIL_COLUMNS), [[_fmt(x.get(c)) for c in DETAIL_COLUMNS] for x in mine]
        )
        md.append("")
        if r.skipped:
            md += [
                "Skipped (data not available): " + "; ".join(f"{i} ({w})" for i, w in r.skipped),
                "",
            ]
        if a.kind == "CSV":
            md += [
                "Per-site offenders: not available (an SvK CSV file holds the resource total).",
                "",
            ]
        elif r.offenders:
            md += ["### Offenders", ""]
            md += _md_table(
                ["site", "oem", "kind", "detail"],
                [[o.site_id, o.oem, o.kind, o.detail] for o in r.offenders],
            )
            md.append("")
    for s in result.sine_sets:
        md += [f"## Sine tests {s.product.value}", ""]
        name = f"sine-set-{s.product.value}"
        mine = [x for x in rows if x["activation"] == name]
        md += _md_table(
            list(DETAIL_COLUMNS), [[_fmt(x.get(c)) for c in DETAIL_COLUMNS] for x in mine]
        )
        md.append("")
        if s.fits:
            md += _md_table(
                ["period [s]", "|F|", "phase [deg]", "periods fitted", "fitted span [s]"],
                [
                    [
                        f"{f.period_s:g}",
                        f"{f.gain:.4f}",
                        f"{f.phase_deg:.2f}",
                        str(f.periods_used),
                        f"{f.t_start:.1f}-{f.t_end:.1f}",
                    ]
                    for f in s.fits
                ],
            )
            md.append("")
        if len(s.fits) >= 2:
            bode = plot_bode(
                s.fits, plots / f"bode-{s.product.value}.png", f"Bode, {s.product.value}"
            )
            nyq = plot_nyquist(s.fits, s.product, plots / f"nyquist-{s.product.value}.png")
            written += [bode, nyq]
            md += [f"![bode](plots/{bode.name})", "", f"![nyquist](plots/{nyq.name})", ""]
    if result.chain_oems:
        md += ["## Dispatch chain (FOPDT, command -> battery power)", ""]
        md += _md_table(
            ["OEM / site", "oem", "steps", "gain", "tau [s]", "dead time [s]"],
            [
                [
                    c.name,
                    c.oem,
                    str(c.steps),
                    f"{c.gain:.3f}",
                    f"{c.tau_s:.2f}",
                    f"{c.dead_time_s:.2f}",
                ]
                for c in [*result.chain_oems, *result.chain_sites]
            ],
        )
        md.append("")
    md_path = out / "report.md"
    md_path.write_text("\n".join(md), encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(markdown_to_html(md, result.source), encoding="utf-8")
    return [*written, md_path, html_path]


_IMG_RE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")


def markdown_to_html(lines: list[str], title: str) -> str:
    """The small Markdown subset the report uses (headings, images, tables, text) as HTML."""
    body: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *rest = table
            body.append(
                "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
            )
            for row in rest:
                cls = ' class="fail"' if "FAIL" in row or "ERROR" in row else ""
                body.append(
                    f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                )
            body.append("</table>")
            table.clear()

    for line in lines:
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([c.strip() for c in line.strip("|").split(" | ")])
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif m := _IMG_RE.match(line):
            body.append(f'<p><img src="{html.escape(m["src"])}" alt="{html.escape(m["alt"])}"></p>')
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 6px;font-size:90%}tr.fail{background:#fdd}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
