"""Audit outputs: verdicts.json / verdicts.csv, report.md, report.html, summary.json, plots.

The page people read is :mod:`analytics.audit.page` (title, overall verdict, products,
activations, then each activation); ``report.md`` holds the same in Markdown and
``summary.json`` its title and overall verdict (the operations view lists reports by it).
Per activation: the delivered response against the expected response and the required
envelope (the product curve's steady-state tolerances, ``contract.products``) with the
battery power, baseline and other products above it, the mean delivered response and
baseline per site of each OEM, the verdict rows, skipped rules and offenders. Sine tests:
Bode and Nyquist plots of the fitted periods. Dispatch chain: FOPDT fits per OEM and site.
:class:`ProgressBar` reports long runs on stderr (tqdm when installed, else plain text).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from analytics.audit.page import (
    Extras,
    activation_label,
    overall,
    plain_table,
    product_name,
    product_rows,
    render_html,
    report_title,
)
from analytics.audit.page import sine_html as page_sine
from analytics.audit.run import ActivationResult, AuditResult, SineSet
from analytics.delivered import delivered_mw, others_mw
from analytics.plots import plot_activation, plot_bode, plot_nyquist, plot_oem
from analytics.rules.base import Context, Params, RuleError
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
    """Delivered response vs expected and envelope; above it power, baseline, reference."""
    s = r.series
    if s is None:
        return None
    product = r.activation.product
    ctx = Context(s, product, Params(period_s=r.activation.period_s))
    try:
        expected = expected_response(ctx)
    except (SeriesError, RuleError, ValueError):
        expected = None
    envelope = None
    if expected is not None:
        curve = CURVES[product]
        lo = expected - curve.under_tolerance * np.abs(expected)
        hi = expected + curve.over_tolerance * np.abs(expected)
        envelope = (lo, hi)
    others = others_mw(s, product)
    baseline = s.baseline_mw
    reference = None
    if others is not None:
        reference = others if baseline is None else baseline + others
    return plot_activation(
        s.t,
        delivered_mw(s, product),
        plots / f"{_slug(r.activation.activation_id)}-activation.png",
        expected_mw=expected,
        envelope_mw=envelope,
        title=f"{activation_label(r.activation)} {r.activation.activation_id}",
        power_mw=s.power_mw,
        baseline_mw=baseline,
        reference_mw=reference,
    )


def _oem_plot(r: ActivationResult, plots: Path) -> Path | None:
    if r.series is None or not r.oem_response:
        return None
    return plot_oem(
        r.series.t,
        r.oem_response,
        plots / f"{_slug(r.activation.activation_id)}-oem.png",
        baseline_mw=r.oem_baseline,
        title=f"{r.activation.activation_id}: delivered response and baseline per OEM",
    )


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return out


def write_report(
    result: AuditResult, out: Path, *, ui_url: str | None = None, generated: str | None = None
) -> list[Path]:
    """Write verdicts.json/csv, plots/*.png, report.md, report.html and summary.json.

    ``ui_url``: the operations view (``flowerhub ui``) the offenders link to; without it
    the links are relative to the UI that serves the report (:mod:`analytics.audit.page`).
    """
    out.mkdir(parents=True, exist_ok=True)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    written = list(write_tables(result, out))
    rows = result.rows()
    title = report_title(result)
    status, line = overall(result)
    md: list[str] = [f"# {title}", "", f"**{status}**: {line}.", "", f"Source: {result.source}", ""]
    md += _md_products(result)
    if result.method:
        md += ["## Method", "", *(f"- {line}" for line in result.method), ""]
    figures: dict[str, list[tuple[Path, str]]] = {}
    for r in result.results:
        lines, figures[r.activation.activation_id] = _md_activation(r, rows, plots)
        md += lines
        written += [path for path, _ in figures[r.activation.activation_id]]
    sine_parts = [_sine_set(s, rows, plots) for s in result.sine_sets]
    for lines, _, images in sine_parts:
        md += lines
        written += images
    chain_lines, chain_html = _chain(result)
    md += chain_lines
    md_path = out / "report.md"
    md_path.write_text("\n".join(md), encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(
        render_html(
            result,
            figures,
            generated=generated or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            ui_url=ui_url,
            extras=Extras(sine="\n".join(part for _, part, _ in sine_parts), chain=chain_html),
        ),
        encoding="utf-8",
    )
    summary = out / "summary.json"
    summary.write_text(
        json.dumps({"title": title, "status": status, "summary": line}, indent=2) + "\n",
        encoding="utf-8",
    )
    return [*written, md_path, html_path, summary]


def _md_products(result: AuditResult) -> list[str]:
    products = product_rows(result)
    if not products:
        return []
    table = _md_table(
        ["product", "activations", "met", "not met", "not judged", "offenders", "verdict"],
        [
            [
                product_name(p.product),
                str(p.activations),
                str(p.passed),
                str(p.failed),
                str(p.errors),
                str(p.offenders),
                p.status,
            ]
            for p in products
        ],
    )
    return [*table, ""]


_CAPTIONS = (
    "fleet: delivered response against the expected one; above, battery power and baseline",
    "per OEM: mean delivered response and baseline per site",
)


def _md_activation(
    r: ActivationResult, rows: list[dict[str, object]], plots: Path
) -> tuple[list[str], list[tuple[Path, str]]]:
    """One activation's Markdown section and its plots (with their captions)."""
    a = r.activation
    md = [f"## {activation_label(a)} {a.activation_id}", ""]
    md += [
        f"{a.product.value} {a.test_type.value} "
        f"({a.kind}{', detected' if a.detected else ''}), {a.start} .. {a.end}"
        + (f", fleet {a.fleet_id}" if a.fleet_id else ""),
        "",
        *(f"- {note}" for note in r.notes),
        *([""] if r.notes else []),
    ]
    figures = []
    for plot, caption in zip(
        (_activation_plot(r, plots), _oem_plot(r, plots)), _CAPTIONS, strict=True
    ):
        if plot is not None:
            figures.append((plot, caption))
            md += [f"![{plot.stem}](plots/{plot.name})", ""]
    mine = [x for x in rows if x["activation"] == a.activation_id]
    md += _md_table(list(DETAIL_COLUMNS), [[_fmt(x.get(c)) for c in DETAIL_COLUMNS] for x in mine])
    md.append("")
    if r.skipped:
        md += [
            "Skipped (data not available): " + "; ".join(f"{i} ({w})" for i, w in r.skipped),
            "",
        ]
    if a.kind == "CSV":
        md += ["Per-site offenders: not available (an SvK CSV file holds the resource total).", ""]
    elif r.offenders:
        md += ["### Offenders", ""]
        md += _md_table(
            ["site", "oem", "kind", "detail"],
            [[o.site_id, o.oem, o.kind, o.detail] for o in r.offenders],
        )
        md.append("")
    else:
        md += ["Offenders: none.", ""]
    return md, figures


def _sine_set(
    s: SineSet, rows: list[dict[str, object]], plots: Path
) -> tuple[list[str], str, list[Path]]:
    """A sine-test set: its Markdown, its HTML section and its Bode/Nyquist plots."""
    md = [f"## Sine tests {s.product.value}", ""]
    name = f"sine-set-{s.product.value}"
    mine = [x for x in rows if x["activation"] == name]
    md += _md_table(list(DETAIL_COLUMNS), [[_fmt(x.get(c)) for c in DETAIL_COLUMNS] for x in mine])
    md.append("")
    head = ["period [s]", "|F|", "phase [deg]", "periods fitted", "fitted span [s]"]
    fits = [
        [
            f"{f.period_s:g}",
            f"{f.gain:.4f}",
            f"{f.phase_deg:.2f}",
            str(f.periods_used),
            f"{f.t_start:.1f}-{f.t_end:.1f}",
        ]
        for f in s.fits
    ]
    if fits:
        md += [*_md_table(head, fits), ""]
    images: list[Path] = []
    if len(s.fits) >= 2:
        bode = plot_bode(s.fits, plots / f"bode-{s.product.value}.png", f"Bode, {s.product.value}")
        nyq = plot_nyquist(s.fits, s.product, plots / f"nyquist-{s.product.value}.png")
        images = [bode, nyq]
        md += [f"![bode](plots/{bode.name})", "", f"![nyquist](plots/{nyq.name})", ""]
    table = plain_table(head, fits) if fits else ""
    return md, page_sine(f"Sine tests, {product_name(s.product)}", mine, table, images), images


def _chain(result: AuditResult) -> tuple[list[str], str]:
    """The dispatch-chain fits: Markdown lines and the HTML section."""
    if not result.chain_oems:
        return [], ""
    head = ["OEM / site", "oem", "steps", "gain", "tau [s]", "dead time [s]"]
    rows = [
        [c.name, c.oem, str(c.steps), f"{c.gain:.3f}", f"{c.tau_s:.2f}", f"{c.dead_time_s:.2f}"]
        for c in [*result.chain_oems, *result.chain_sites]
    ]
    md = ["## Dispatch chain (FOPDT, command -> battery power)", "", *_md_table(head, rows), ""]
    html = (
        "<h2>Dispatch chain (first order plus dead time, command to battery power)</h2>"
        + plain_table(head, rows)
    )
    return md, html
