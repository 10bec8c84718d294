"""The audit report as a page people read: title, overall verdict, products, numbers with
units, plots inline, offenders linked to the operations view's Site page."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from analytics.audit.extract import Activation
from analytics.audit.page import fmt_required, fmt_value, report_title, site_link
from analytics.audit.report import write_report
from analytics.audit.run import ActivationResult, AuditOptions, AuditResult, audit_log
from analytics.testing.stacked import Logged, stacked_log
from analytics.verdicts import TestType
from contract.enums import Product

START = np.datetime64("2026-09-21T14:15:00", "us")


@pytest.mark.parametrize(
    ("value", "unit", "want"),
    [
        (0.0864, "MW", "0.08640 MW"),
        (1234.5678, "MW", "1,235 MW"),
        (0.3866, "MWs", "0.3866 MWs"),
        (7.25, "s", "7.2 s"),
        (809.9999992, "s", "810.0 s"),
        (1250.0, "s", "1,250 s"),
        (0.962, "fraction", "96.2 %"),
        (-0.05, "fraction", "-5.0 %"),
        (0.43, "ratio", "0.4300"),
        (21.5, "min", "21.5 min"),
        (None, "MW", "\N{EN DASH}"),
        (float("nan"), "s", "\N{EN DASH}"),
        (0.0, "MW", "0 MW"),
    ],
)
def test_numbers_read_with_their_units(value: float | None, unit: str, want: str) -> None:
    assert fmt_value(value, unit) == want


@pytest.mark.parametrize(
    ("row", "want"),
    [
        ({"unit": "MW", "comparison": ">=", "threshold": 0.086}, "≥ 0.08600 MW"),
        ({"unit": "s", "comparison": "<=", "threshold": 750.0}, "≤ 750.0 s"),
        (
            {
                "unit": "fraction",
                "comparison": "between",
                "threshold": -0.05,
                "threshold_high": 0.2,
            },
            "-5.0 % to 20.0 %",
        ),
        ({"unit": "", "threshold": None}, "\N{EN DASH}"),  # an ERROR row
    ],
)
def test_the_required_value_reads_as_a_comparison(row: dict[str, object], want: str) -> None:
    assert fmt_required(row) == want


def _act(
    aid: str, product: Product, fleet: str | None = "fleet-7", kind: str = "TEST"
) -> Activation:
    return Activation(
        aid,
        product,
        TestType.RAMP,
        kind,
        START,
        START + np.timedelta64(600, "s"),
        fleet_id=fleet,
    )


def _result(*acts: Activation) -> AuditResult:
    return AuditResult("/var/archive/run-12", [ActivationResult(a, None) for a in acts])


@pytest.mark.parametrize(
    ("acts", "want"),
    [
        ((_act("t-1", Product.FCR_D_UP),), "FCR-D up ramp test t-1 · fleet fleet-7"),
        ((_act("t-1", Product.FCR_D_UP, fleet=None),), "FCR-D up ramp test t-1"),
        (
            (_act("t-1", Product.FCR_D_UP), _act("t-2", Product.MFRR)),
            "Audit of fleet fleet-7: 2 activations, 2026-09-21 14:15 to 14:25 UTC",
        ),
        (
            (_act("Fleet1_FcrdUp", Product.FCR_D_UP, "Fleet1", "CSV"),),
            "FCR-D up ramp test Fleet1_FcrdUp · resource Fleet1",
        ),
        ((), "Audit: no activation found"),
    ],
)
def test_the_title_names_the_activation_and_the_fleet(
    acts: tuple[Activation, ...], want: str
) -> None:
    title = report_title(_result(*acts))
    assert title == want
    assert "/var/archive" not in title  # never a file path


def test_site_links_go_to_the_site_view_over_the_activation() -> None:
    a = _act("t-1", Product.FCR_D_UP)
    relative = site_link("site 7/b", a, None)
    assert (
        'href="/#/site/site%207%2Fb?from=2026-09-21T14:14:30Z&amp;to=2026-09-21T14:25:00Z"'
        in relative
    )
    assert "data-ui-relative" in relative  # opened as a file: shown as text by the page script
    absolute = site_link("site-1", a, "http://127.0.0.1:8765")
    assert 'href="http://127.0.0.1:8765/#/site/site-1?from=' in absolute
    assert "data-ui-relative" not in absolute


class _Page(HTMLParser):
    """Collects the page's headings, badges, images and links."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AuditResult]:
    root = tmp_path_factory.mktemp("log")
    t = np.arange(240, dtype=np.float64)
    stacked_log(
        root,
        frequency_hz=np.where((t >= 60) & (t < 180), 49.7, 50.0),
        armed_kw={Product.FCR_N: 2.0, Product.FCR_D_UP: 4.0},
        activations=[Logged("ev-1", Product.FCR_D_UP, "FREQUENCY_EVENT", 60.0, 200.0, 0.024)],
        sites=6,
        mirrored="site-00002",
    )
    result = audit_log(root, AuditOptions())
    out = tmp_path_factory.mktemp("report")
    write_report(result, out, ui_url="http://127.0.0.1:8765/", generated="2026-09-21 15:00 UTC")
    return out, result


def test_the_page_reads_top_down(page: tuple[Path, AuditResult]) -> None:
    out, _ = page
    text = (out / "report.html").read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(text)
    words = " ".join(" ".join(parser.text).split())
    title = "FCR-D up operation ev-1 · fleet fleet-1"
    assert f"<title>{title}</title>" in text
    assert words.index(title) < words.index("PASS") < words.index("Products")
    assert words.index("Products") < words.index("Activations") < words.index("Method")
    assert "1 activation: 1 of 1 requirements met, 1 offender row" in words
    assert re.search(r'<div class="verdict PASS">', text)
    # plots inline, the delivered response and the baseline
    images = [a for tag, a in parser.tags if tag == "img"]
    assert len(images) == 2
    assert all(str(a["src"]).startswith("data:image/png;base64,") for a in images)
    # numbers with units, results coloured, notes on the baseline and what was taken off
    assert "≥ -5.0 %" in words
    assert '<span class="badge PASS">PASS</span>' in text
    assert "6 of 6 sites reported one" in words
    assert "FCR_N" in words
    assert "taken off" in words
    # the offender, linked to the UI's Site view over the activation
    links = [
        str(a["href"]) for tag, a in parser.tags if tag == "a" and "site" in str(a.get("class"))
    ]
    assert links == [
        "http://127.0.0.1:8765/#/site/site-00002?from=2026-09-21T14:13:50Z&to=2026-09-21T14:16:40Z"
    ]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary == {
        "title": title,
        "status": "PASS",
        "summary": "1 activation: 1 of 1 requirements met, 1 offender row",
    }
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith(f"# {title}\n\n**PASS**: 1 activation")


def test_a_failing_audit_says_so_first(tmp_path: Path) -> None:
    a = _act("t-1", Product.FCR_D_UP)
    result = AuditResult("x", [ActivationResult(a, None, error="SeriesError: no telemetry")])
    write_report(result, tmp_path)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<div class="verdict ERROR">' in text
    assert "0 of 1 requirements met, 1 could not be judged" in text
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "ERROR"
