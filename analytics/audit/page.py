"""The audit report as a page people read: ``report.html`` (one self-contained file).

Top down: the title (activation and fleet, or how many activations of which fleet; never a
file path), the overall verdict in one coloured line, a table per product (activations,
requirements met / not met / not judged, offenders), a table of the activations, then
per activation its notes (baseline, other products taken off), its plots inline, its
requirements with readable numbers and units, and its offenders, each linked to the
operations view's Site page over the activation's time range (``flowerhub ui``:
``#/site/<id>?from=...&to=...``). Served by the UI (its Activations view links it), the
links go to the UI that serves it; with ``ui_url`` they go to that UI; a report opened as
a file without ``ui_url`` shows them as plain text. Plots are embedded (PNG as data URIs):
the one file can be sent around.

:func:`report_title` and :func:`product_rows` are shared with ``report.md``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from analytics.audit.extract import PRE_S, Activation
from analytics.audit.run import ActivationResult, AuditResult
from contract.enums import Product
from contract.products import MARKET_PRODUCTS

Row = Mapping[str, object]
NONE = "\N{EN DASH}"  # a value that is not there
PRODUCT_NAMES = {
    Product.FCR_N: "FCR-N",
    Product.FCR_D_UP: "FCR-D up",
    Product.FCR_D_DOWN: "FCR-D down",
    Product.FFR: "FFR",
    Product.AFRR: "aFRR",
    Product.MFRR: "mFRR",
}
TEST_NAMES = {
    "Step": "step test",
    "Ramp": "ramp test",
    "Sine": "sine test",
    "Operation": "operation",
    "Activation": "activation",
}


def product_name(product: Product | str) -> str:
    p = Product(product)
    return PRODUCT_NAMES.get(p, p.value)


def fleets(result: AuditResult) -> list[str]:
    """The fleets (event log) or resources (SvK CSV) the audited activations belong to."""
    return sorted({r.activation.fleet_id for r in result.results if r.activation.fleet_id})


def utc(stamp: np.datetime64, unit: str = "s") -> str:
    """``2026-09-21 14:15:00 UTC`` (``unit`` "m": to the minute)."""
    text = str(np.datetime_as_string(stamp.astype("datetime64[s]"), unit="s"))
    return text.replace("T", " ")[: 16 if unit == "m" else 19] + " UTC"


def activation_label(a: Activation) -> str:
    """``FCR-D up ramp test demo-fcrd_up_ramp-1a2b``."""
    return f"{product_name(a.product)} {TEST_NAMES.get(a.test_type.value, a.test_type.value)}"


def report_title(result: AuditResult) -> str:
    """The page title: the activation and its fleet, or the activations of the fleet(s)."""
    names = fleets(result)
    who = ""
    if names:
        kind = "resource" if any(r.activation.kind == "CSV" for r in result.results) else "fleet"
        who = f"{kind} {', '.join(names)}"
    if len(result.results) == 1:
        a = result.results[0].activation
        title = f"{activation_label(a)} {a.activation_id}"
        return f"{title} · {who}" if who else title
    if not result.results:
        return f"Audit of {who}: no activation found" if who else "Audit: no activation found"
    first = min(r.activation.start for r in result.results)
    last = max(r.activation.end for r in result.results)
    span = f"{utc(first, 'm')[:-4]} to {utc(last, 'm')[11:]}"
    n = len(result.results)
    return f"Audit of {who or 'the log'}: {n} activations, {span}"


@dataclass(frozen=True)
class ProductRow:
    """One product's line of the summary table."""

    product: Product
    activations: int
    passed: int
    failed: int
    errors: int
    offenders: int

    @property
    def status(self) -> str:
        return "FAIL" if self.failed else "ERROR" if self.errors else "PASS"


def product_rows(result: AuditResult) -> list[ProductRow]:
    rows = result.rows()
    out = []
    for product in MARKET_PRODUCTS:
        mine = [r for r in rows if r["product"] == product.value]
        acts = [r for r in result.results if r.activation.product is product]
        if not mine and not acts:
            continue
        out.append(
            ProductRow(
                product,
                len(acts),
                sum(1 for r in mine if r["status"] == "PASS"),
                sum(1 for r in mine if r["status"] == "FAIL"),
                sum(1 for r in mine if r["status"] == "ERROR"),
                sum(len(r.offenders) for r in acts),
            )
        )
    return out


def overall(result: AuditResult) -> tuple[str, str]:
    """(status, one line): PASS / FAIL / ERROR / NONE and what the counts are."""
    rows = result.rows()
    failed = sum(1 for r in rows if r["status"] == "FAIL")
    errors = sum(1 for r in rows if r["status"] == "ERROR")
    offenders = sum(len(r.offenders) for r in result.results)
    n = len(result.results)
    acts = f"{n} activation{'s' if n != 1 else ''}"
    if not rows:
        return "NONE", f"{acts}: no requirement could be judged"
    status = "FAIL" if failed else "ERROR" if errors else "PASS"
    parts = [f"{len(rows) - failed - errors} of {len(rows)} requirements met"]
    if failed:
        parts.append(f"{failed} not met")
    if errors:
        parts.append(f"{errors} could not be judged")
    parts.append(f"{offenders} offender row{'s' if offenders != 1 else ''}")
    return status, f"{acts}: " + ", ".join(parts)


# ------------------------------------------------------------------ numbers


def significant(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, never in exponent notation."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def fmt_value(value: object, unit: str) -> str:
    """A measured value or threshold with its unit, for people (fractions as percent)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return NONE
    v = float(value)
    if not math.isfinite(v):
        return NONE
    if unit == "fraction":
        return f"{v * 100:.1f} %"
    if unit in ("s", "min"):
        return f"{v:,.1f} {unit}" if abs(v) < 1000 else f"{v:,.0f} {unit}"
    if unit == "ratio" or not unit:
        return significant(v)
    return f"{significant(v)} {unit}"


def fmt_required(row: Row) -> str:
    unit = str(row.get("unit") or "")
    comparison = row.get("comparison")
    low = fmt_value(row.get("threshold"), unit)
    if comparison == ">=":
        return f"≥ {low}"
    if comparison == "<=":
        return f"≤ {low}"
    if comparison == "between":
        return f"{low} to {fmt_value(row.get('threshold_high'), unit)}"
    return low


# ------------------------------------------------------------------ HTML

CSS = """
:root{--pass:#137333;--pass-bg:#e6f4ea;--fail:#b3261e;--fail-bg:#fce8e6;--error:#9a5b00;
--error-bg:#fef3d6;--ink:#1f2328;--muted:#59636e;--line:#d8dee4;--head:#f6f8fa}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);
margin:0;background:#fff}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 8px;padding-top:12px;
border-top:1px solid var(--line)}h3{font-size:16px;margin:20px 0 6px}
.sub{color:var(--muted);margin:0 0 18px}.muted{color:var(--muted)}
.verdict{display:flex;align-items:center;gap:16px;padding:14px 18px;border-radius:8px;
margin:12px 0 20px;font-size:17px}
.verdict .word{font-size:26px;font-weight:700;letter-spacing:.04em}
.verdict.PASS{background:var(--pass-bg);color:var(--pass)}
.verdict.FAIL{background:var(--fail-bg);color:var(--fail)}
.verdict.ERROR,.verdict.NONE{background:var(--error-bg);color:var(--error)}
table{border-collapse:collapse;width:100%;margin:6px 0 14px;font-size:14px}
th,td{border-bottom:1px solid var(--line);padding:6px 9px;text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.FAIL td{background:#fff7f6}tr.ERROR td{background:#fffbef}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:700;
letter-spacing:.03em}
.badge.PASS{background:var(--pass-bg);color:var(--pass)}
.badge.FAIL{background:var(--fail-bg);color:var(--fail)}
.badge.ERROR,.badge.NONE{background:var(--error-bg);color:var(--error)}
.badge.kind{background:#eef1f4;color:var(--ink)}
.rule{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;color:var(--muted)}
.detail{color:var(--muted);font-size:13px}
figure{margin:10px 0}figure img{max-width:100%;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--muted);font-size:13px}
ul.notes{margin:4px 0 10px;padding-left:20px;color:var(--muted)}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
a{color:#0b57d0}a.site{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
footer{margin-top:40px;color:var(--muted);font-size:13px}
"""

# Opened as a file with no UI address given, the site links lead nowhere: show them as text.
SCRIPT = """
if (location.protocol === "file:") {
  for (const a of document.querySelectorAll("a.site[data-ui-relative]")) {
    const span = document.createElement("span");
    span.className = "site";
    span.title = "open this report in flowerhub ui to follow the link to the Site view";
    span.textContent = a.textContent;
    a.replaceWith(span);
  }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    """A table from escaped cells (a header starting with '#' is right-aligned)."""
    th = "".join(
        f'<th class="num">{_e(h[1:])}</th>' if h.startswith("#") else f"<th>{_e(h)}</th>"
        for h in head
    )
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{_e(classes[k])}"' if k < len(classes) and classes[k] else ""
        cells = "".join(
            f'<td class="num">{c}</td>' if head[i].startswith("#") else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def site_link(site: str, a: Activation, ui_url: str | None) -> str:
    """The offender's site, linked to the UI's Site view over the activation's time."""
    start = a.start - np.timedelta64(int(PRE_S * 1e6), "us")
    query = f"from={_iso(start)}&to={_iso(a.end)}"
    base = "/" if ui_url is None else ui_url.rstrip("/") + "/"
    href = f"{base}#/site/{quote(site, safe='')}?{query}"
    relative = " data-ui-relative" if ui_url is None else ""
    return f'<a class="site" href="{_e(href)}"{relative}>{_e(site)}</a>'


def _iso(stamp: np.datetime64) -> str:
    return np.datetime_as_string(stamp.astype("datetime64[s]"), unit="s") + "Z"


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _verdict_rows(rows: Sequence[Row]) -> str:
    cells, classes = [], []
    for r in rows:
        status = str(r["status"])
        detail = _e(r.get("detail") or "")
        if r.get("other_reading"):
            detail += f"<br><b>Other reading:</b> {_e(r['other_reading'])}"
        cells.append(
            [
                f"{_e(r.get('requirement') or '')}<br><span class='rule'>{_e(r['rule_id'])} · "
                f"{_e(r.get('rule_version') or '')}</span>",
                _e(fmt_value(r.get("measured"), str(r.get("unit") or ""))),
                _e(fmt_required(r)),
                _badge(status),
                f'<span class="detail">{detail}</span>',
            ]
        )
        classes.append(status if status != "PASS" else "")
    return _table(["Requirement", "#Measured", "#Required", "Result", "Detail"], cells, classes)


def _activation_section(
    r: ActivationResult, rows: Sequence[Row], plots: Sequence[tuple[Path, str]], ui_url: str | None
) -> str:
    a = r.activation
    mine = [x for x in rows if x["activation"] == a.activation_id]
    status = (
        "FAIL"
        if any(x["status"] == "FAIL" for x in mine)
        else ("ERROR" if any(x["status"] != "PASS" for x in mine) or not mine else "PASS")
    )
    minutes = (a.end - a.start).astype("timedelta64[s]").astype(np.int64) / 60
    kind = f"{a.kind}{', found in the frequency' if a.detected else ''}"
    out = [
        f'<h2 id="{_e(_anchor(a.activation_id))}">{_e(activation_label(a))} · '
        f"{_e(a.activation_id)} {_badge(status)}</h2>",
        f'<p class="sub">{_e(kind)} · {_e(utc(a.start))} to {_e(utc(a.end)[11:])} '
        f"({minutes:.1f} min){_e(' · fleet ' + a.fleet_id) if a.fleet_id else ''}</p>",
    ]
    if r.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in r.notes) + "</ul>")
    out += [_img(path, caption) for path, caption in plots]
    if mine:
        out.append(_verdict_rows(mine))
    if r.skipped:
        out.append(
            '<p class="detail">Not judged for lack of data: '
            + _e("; ".join(f"{i} ({w})" for i, w in r.skipped))
            + "</p>"
        )
    if a.kind == "CSV":
        out.append('<p class="muted">Offenders per site: an SvK CSV file holds the total.</p>')
    elif r.offenders:
        out.append(f"<h3>Offenders ({len(r.offenders)})</h3>")
        out.append(
            _table(
                ["Site", "OEM", "Kind", "Detail"],
                [
                    [
                        site_link(o.site_id, a, ui_url),
                        _e(o.oem),
                        f'<span class="badge kind">{_e(o.kind)}</span>',
                        f'<span class="detail">{_e(o.detail)}</span>',
                    ]
                    for o in r.offenders
                ],
            )
        )
    else:
        out.append('<p class="muted">Offenders: none (every site delivered its share).</p>')
    return "\n".join(out)


def _anchor(text: str) -> str:
    return "a-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


@dataclass(frozen=True)
class Extras:
    """The parts of the page after the activations (already rendered as HTML)."""

    sine: str = ""
    chain: str = ""


def render_html(
    result: AuditResult,
    plots: Mapping[str, Sequence[tuple[Path, str]]],
    *,
    generated: str,
    ui_url: str | None = None,
    extras: Extras = Extras(),  # a frozen, empty default
) -> str:
    """The whole page (see module doc); ``plots``: activation id -> (PNG, caption)."""
    rows = result.rows()
    title = report_title(result)
    status, line = overall(result)
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">Audit against Svenska kraftnät\'s requirements · generated {_e(generated)}'
        f" · source <code>{_e(result.source)}</code></p>",
        f'<div class="verdict {_e(status)}"><span class="word">{_e(status)}</span>'
        f"<span>{_e(line)}</span></div>",
    ]
    products = product_rows(result)
    if products:
        body.append("<h3>Products</h3>")
        body.append(
            _table(
                [
                    "Product",
                    "#Activations",
                    "#Met",
                    "#Not met",
                    "#Not judged",
                    "#Offenders",
                    "Verdict",
                ],
                [
                    [
                        _e(product_name(p.product)),
                        str(p.activations),
                        str(p.passed),
                        str(p.failed),
                        str(p.errors),
                        str(p.offenders),
                        _badge(p.status),
                    ]
                    for p in products
                ],
            )
        )
    if result.results:
        body.append("<h3>Activations</h3>")
        acts = []
        for r in result.results:
            a = r.activation
            mine = [x for x in rows if x["activation"] == a.activation_id]
            bad = sum(1 for x in mine if x["status"] != "PASS")
            verdict = "FAIL" if bad else "PASS" if mine else "ERROR"
            acts.append(
                [
                    f'<a href="#{_e(_anchor(a.activation_id))}">{_e(a.activation_id)}</a>',
                    _e(activation_label(a)),
                    _e(utc(a.start)),
                    f"{len(mine) - bad} of {len(mine)}",
                    str(len(r.offenders)),
                    _badge(verdict),
                ]
            )
        body.append(
            _table(
                ["Activation", "What", "Start", "#Requirements met", "#Offenders", "Verdict"], acts
            )
        )
    if result.method:
        items = "".join(f"<li>{_e(m)}</li>" for m in result.method)
        body.append(f"<details><summary>Method</summary><ul>{items}</ul></details>")
    body.extend(
        _activation_section(r, rows, plots.get(r.activation.activation_id, ()), ui_url)
        for r in result.results
    )
    body += [extras.sine, extras.chain]
    body.append(
        "<footer>verdicts.json and verdicts.csv beside this page hold every row; report.md "
        "the same in Markdown.</footer>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>\n"
        + "\n".join(part for part in body if part)
        + f"\n</main><script>{SCRIPT}</script></body></html>\n"
    )


def sine_html(title: str, rows: Sequence[Row], fits_table: str, plots: Sequence[Path]) -> str:
    """A sine-test set's section: its requirements, fitted periods and Bode/Nyquist plots."""
    out = [f"<h2>{_e(title)}</h2>"]
    if rows:
        out.append(_verdict_rows(rows))
    if fits_table:
        out.append(fits_table)
    out += [_img(p, p.stem) for p in plots]
    return "\n".join(out)


def plain_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of plain text cells (escaped here)."""
    return _table(head, [[_e(c) for c in row] for row in rows])
