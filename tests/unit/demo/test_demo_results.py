"""Audit outcome vs scenario expectations, and the summary tables (pure)."""

from __future__ import annotations

import argparse

import pytest

from flowerhub.cli import build_parser
from flowerhub.demo.fleet import compose_fleet, map_models
from flowerhub.demo.results import (
    AuditOutcome,
    Check,
    SelfConsumption,
    all_ok,
    check_table,
    compare,
    margin,
    offender_table,
    rows_table,
    rule_status,
    table,
    verdict_table,
)
from flowerhub.demo.scenario import Expected, Verdict

SITES = compose_fleet(6, seed=7, models=map_models())


def _row(rule: str, status: str, activation: str = "a1") -> dict[str, object]:
    return {"activation": activation, "rule_id": rule, "status": status, "measured": 1.5}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], "MISSING"),
        ([_row("R", "PASS")], "PASS"),
        ([_row("R", "PASS"), _row("R", "PASS", "a2")], "PASS"),
        ([_row("R", "PASS"), _row("R", "FAIL", "a2")], "FAIL"),
        ([_row("R", "ERROR")], "FAIL"),
        ([_row("OTHER", "PASS")], "MISSING"),
    ],
)
def test_rule_status(rows: list[dict[str, object]], expected: str) -> None:
    assert rule_status(rows, "R") == expected


def test_compare_verdicts_and_offenders() -> None:
    outcome = AuditOutcome(
        rows=[_row("A", "PASS"), _row("B", "FAIL"), _row("C", "PASS")],
        offenders=[{"site_id": SITES[1].site_id, "kind": "OVERRIDDEN"}],
    )
    expected = Expected(
        verdicts={"A": Verdict.PASS, "B": Verdict.FAIL, "C": Verdict.FAIL, "D": Verdict.PASS},
        offender_sites=[1, 2],
    )
    checks = compare(expected, outcome, SITES)
    got = {c.what: (c.actual, c.ok) for c in checks}
    assert got["A"] == ("PASS", True)
    assert got["B"] == ("FAIL", True)
    assert got["C"] == ("PASS", False)
    assert got["D"] == ("MISSING", False)
    assert got[f"offender {SITES[1].site_id} (saj)"] == ("listed (OVERRIDDEN)", True)
    assert got[f"offender {SITES[2].site_id} (sungrow)"] == ("not listed", False)
    assert not all_ok(checks)
    assert all_ok([c for c in checks if c.ok])
    assert check_table(checks).count("MISMATCH") == 3


def _figure(import_kwh: float) -> SelfConsumption:
    return SelfConsumption(
        homes=6, seconds=30.0, load_kwh=0.2, import_kwh=import_kwh, own_import_kwh=0.05
    )


@pytest.mark.parametrize(
    ("offenders", "named", "actual"),
    [
        ([], [], "none"),
        ([1], [1], "none"),  # the expected offender only
        ([1, 2], [1], "1: demo-0002"),
        ([0, 2, 0], [], "2: demo-0000, demo-0002"),
    ],
)
def test_only_these_offenders(offenders: list[int], named: list[int], actual: str) -> None:
    outcome = AuditOutcome(
        offenders=[{"site_id": SITES[i].site_id, "kind": "WRONG_POLARITY"} for i in offenders]
    )
    checks = compare(Expected(offender_sites=named, only_these_offenders=True), outcome, SITES)
    (other,) = [c for c in checks if c.what == "no other offender"]
    assert (other.actual, other.ok) == (actual, actual == "none")
    loose = compare(Expected(offender_sites=named), outcome, SITES)
    assert all(c.what != "no other offender" for c in loose)


@pytest.mark.parametrize(
    ("figure", "actual", "ok"),
    [
        (_figure(0.05), "within (+0.00 %)", True),
        (_figure(0.053), "within (+1.50 %)", True),
        (_figure(0.054), "within (+2.00 %)", True),
        (_figure(0.056), "over (+3.00 %)", False),
        (None, "not measured", False),
    ],
)
def test_extra_import_within_the_expected_share(
    figure: SelfConsumption | None, actual: str, ok: bool
) -> None:
    checks = compare(Expected(max_extra_import_pct=2.0), AuditOutcome(), SITES, figure)
    (check,) = checks
    assert check.what == "extra grid import while armed <= 2 % of load"
    assert (check.actual, check.ok) == (actual, ok)


def test_offender_table_says_none_or_lists_them() -> None:
    assert offender_table(AuditOutcome()).startswith("offenders: none")
    row = {"activation_id": "a1", "site_id": "demo-0001", "oem": "saj", "kind": "OVERRIDDEN"}
    text = offender_table(AuditOutcome(offenders=[{**row, "detail": "read back 0.0 kW"}]))
    assert text.splitlines()[0] == "offenders: 1"
    assert "demo-0001  saj  OVERRIDDEN  read back 0.0 kW" in text


def test_unjudgeable_activation_expected() -> None:
    error = {"activation": "demo-ffr_event-1a2b", "rule_id": "-", "status": "ERROR"}
    outcome = AuditOutcome(rows=[{**error, "detail": "SamplingRateError: 1000 ms"}])
    ok = compare(Expected(unjudgeable={"ffr_event": "SamplingRateError"}), outcome, SITES)
    assert [(c.actual, c.ok) for c in ok] == [("SamplingRateError", True)]
    other = compare(Expected(unjudgeable={"ffr_event": "TestSequenceError"}), outcome, SITES)
    assert not other[0].ok
    judged = compare(Expected(unjudgeable={"ffr_event": "X"}), AuditOutcome(), SITES)
    assert judged[0].actual == "judged"


def test_tables_align_columns() -> None:
    text = table(("a", "long header"), [("x", 1), ("longer cell", 22)])
    lines = text.splitlines()
    assert lines[0] == "a            long header"
    assert lines[1] == "-----------  -----------"
    assert lines[3] == "longer cell  22"
    shown = verdict_table(AuditOutcome(rows=[_row("A", "PASS")]))
    assert "1.5" in shown
    assert "PASS" in shown


def test_check_ok_rules() -> None:
    assert Check("x", "listed", "listed (STALE)").ok
    assert not Check("x", "listed", "not listed").ok
    assert Check("x", "PASS", "PASS").ok
    assert Check("x", "within", "within (+0.40 %)").ok
    assert not Check("x", "within", "over (+2.40 %)").ok


def cli_verbs() -> dict[str, list[str]]:
    """Every ``flowerhub`` verb group and its sub-verbs (from ``flowerhub.cli.build_parser``)."""

    def subs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:  # argparse keeps subparsers only here
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    return {name: sorted(subs(p)) for name, p in subs(build_parser()).items()}


def test_cli_verbs_lists_the_groups_the_demo_runs() -> None:
    verbs = cli_verbs()
    assert "run" in verbs["bridge"]
    assert "worker" in verbs["streams"]
    assert "archive" in verbs
    assert "audit" in verbs
    assert "demo" in verbs


def _verdict(measured: float, threshold: float, comparison: str, **kw: object) -> dict[str, object]:
    return {
        "rule_id": "R",
        "measured": measured,
        "threshold": threshold,
        "comparison": comparison,
        "unit": "MW",
        **kw,
    }


@pytest.mark.parametrize(
    ("row", "want"),
    [
        (_verdict(0.0113, 0.01032, ">="), 0.0950),  # ΔP(7.5): 9.5 % above the 86 %
        (_verdict(0.0101, 0.01032, ">="), -0.0213),  # the marginal run of issue 7: failed
        (_verdict(0.0144, 0.03, "<="), 0.52),  # deactivation excess well under its limit
        (_verdict(5.0, 750.0, "<=", unit="s"), 0.99333),
        (_verdict(0.9, -0.05, ">=", unit="fraction"), 0.95),  # gains: the difference
        (_verdict(-0.001, -0.05, "between", unit="fraction", threshold_high=0.2), 0.049),
        (_verdict(2.0, 0.0, "between", threshold_high=10.0), 0.4),  # 2 of a half band of 5
        (_verdict(1.0, 0.0, ">="), None),  # relative to a zero threshold: undefined
        ({"rule_id": "-", "measured": None, "threshold": None}, None),  # unjudgeable
        (_verdict(1.0, 2.0, "between"), None),  # no upper bound given
    ],
)
def test_margin(row: dict[str, object], want: float | None) -> None:
    got = margin(row)
    if want is None:
        assert got is None
    else:
        assert got == pytest.approx(want, abs=5e-5)


def test_rows_table_shows_the_margin() -> None:
    text = rows_table([_verdict(0.0113, 0.01032, ">=", status="PASS", activation="a1")])
    header, _, line = text.splitlines()
    assert "margin" in header
    assert "+9%" in line or "+10%" in line
    assert line.rstrip().endswith("PASS")
