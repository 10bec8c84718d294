"""The demo's audit step and its comparison with the scenario's expectations.

``run_audit`` judges the run's archive with the event-log audit (``analytics.audit``) in
this process, and writes the report with ``flowerhub audit --log ARCHIVE --out REPORT``.
``compare`` (pure) checks the verdicts and offenders against ``Scenario.expected``:
a rule is PASS when every row of that rule id passed, FAIL when any failed, and missing
when the audit did not judge it; expected offender sites must appear among the offenders
(with ``only_these_offenders``, no other site may: an empty table when none is expected);
the self-consumption figure (``flowerhub.demo.armed``) must stay within
``max_extra_import_pct``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flowerhub.demo.fleet import SiteSpec
from flowerhub.demo.scenario import Expected


@dataclass
class AuditOutcome:
    """Verdict rows (``rule_id``, ``status``, ...), offender rows (``site_id``, ``kind``...)."""

    rows: list[dict[str, object]] = field(default_factory=list)
    offenders: list[dict[str, str]] = field(default_factory=list)
    report_dir: Path | None = None
    error: str | None = None


@dataclass(frozen=True)
class Check:
    """One expectation and what the audit said."""

    what: str
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        if self.expected in ("listed", "within"):  # the actual text says more after it
            return self.actual.startswith(self.expected)
        return self.expected == self.actual


@dataclass(frozen=True)
class SelfConsumption:
    """The armed homes' self-consumption figure (``flowerhub.demo.armed.ImportMeter``):
    integrated over the hold phases, summed over the online homes (kWh)."""

    homes: int
    seconds: float
    load_kwh: float
    import_kwh: float  # what the armed homes imported
    own_import_kwh: float  # what they would have imported in their own mode

    @property
    def extra_pct(self) -> float:
        """Extra grid import caused by being armed, % of the household load."""
        if self.load_kwh <= 0.0:
            return 0.0
        return 100.0 * (self.import_kwh - self.own_import_kwh) / self.load_kwh

    def describe(self) -> str:
        return (
            f"self-consumption while armed: extra grid import {self.extra_pct:+.2f} % of the "
            f"household load ({self.homes} homes, {self.seconds:.0f} s at steady frequency: "
            f"load {self.load_kwh:.3f} kWh, import {self.import_kwh:.4f} kWh, in their own "
            f"mode {self.own_import_kwh:.4f} kWh)"
        )


def rule_status(rows: Iterable[Mapping[str, object]], rule_id: str) -> str:
    """PASS / FAIL over every row of ``rule_id`` (ERROR rows fail), or MISSING."""
    statuses = [str(r.get("status")) for r in rows if r.get("rule_id") == rule_id]
    if not statuses:
        return "MISSING"
    return "PASS" if all(s == "PASS" for s in statuses) else "FAIL"


def compare(
    expected: Expected,
    outcome: AuditOutcome,
    sites: Sequence[SiteSpec],
    self_consumption: SelfConsumption | None = None,
) -> list[Check]:
    """Every expected verdict, offender and figure against the run's outcome (module doc)."""
    checks = [
        Check(rule_id, verdict.value, rule_status(outcome.rows, rule_id))
        for rule_id, verdict in sorted(expected.verdicts.items())
    ]
    for phase, text in sorted(expected.unjudgeable.items()):
        errors = [
            str(r.get("detail"))
            for r in outcome.rows
            if str(r.get("activation", "")).startswith(f"demo-{phase}-")
            and r.get("status") == "ERROR"
        ]
        hit = any(text in e for e in errors)
        checks.append(
            Check(
                f"{phase} not judgeable", text, text if hit else (errors[0] if errors else "judged")
            )
        )
    found = {o.get("site_id") for o in outcome.offenders}
    for index in expected.offender_sites:
        site = sites[index].site_id
        kinds = sorted({o["kind"] for o in outcome.offenders if o.get("site_id") == site})
        checks.append(
            Check(
                f"offender {site} ({sites[index].oem})",
                "listed",
                f"listed ({', '.join(kinds)})" if site in found else "not listed",
            )
        )
    if expected.only_these_offenders:
        named = {sites[i].site_id for i in expected.offender_sites}
        others = sorted(str(s) for s in found - named)
        checks.append(
            Check(
                "no other offender",
                "none",
                "none" if not others else f"{len(others)}: {', '.join(others[:5])}",
            )
        )
    if expected.max_extra_import_pct is not None:
        limit = expected.max_extra_import_pct
        got = self_consumption.extra_pct if self_consumption is not None else None
        checks.append(
            Check(
                f"extra grid import while armed <= {limit:g} % of load",
                "within",
                "not measured"
                if got is None
                else f"{'within' if got <= limit else 'over'} ({got:+.2f} %)",
            )
        )
    return checks


def all_ok(checks: Iterable[Check]) -> bool:
    return all(c.ok for c in checks)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with aligned columns."""
    cells = [[str(h) for h in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def margin(row: Mapping[str, object]) -> float | None:
    """How far a verdict is from failing (+ = on the passing side, - = failed by that much).

    Relative to the threshold for quantities (MW, MWs, s): ``>=`` (measured - threshold) /
    |threshold|, ``<=`` (threshold - measured) / |threshold|. For dimensionless ``fraction``
    rules (ratios, gains, whose thresholds sit near 0) the difference itself. ``between``:
    the distance to the nearer bound (over half the band for quantities). None without
    numbers (an unjudgeable activation) or with a zero threshold of a quantity.
    """
    m, lo, hi = row.get("measured"), row.get("threshold"), row.get("threshold_high")
    if not isinstance(m, float | int) or not isinstance(lo, float | int):
        return None
    fraction = row.get("unit") == "fraction"
    comparison = row.get("comparison")
    if comparison == "between" and isinstance(hi, float | int) and hi > lo:
        inside = min(m - lo, hi - m)
        return float(inside if fraction else inside / ((hi - lo) / 2.0))
    if comparison not in (">=", "<="):
        return None
    over = m - lo if comparison == ">=" else lo - m
    if fraction:
        return float(over)
    return None if lo == 0 else float(over / abs(lo))


def verdict_table(outcome: AuditOutcome) -> str:
    return rows_table(outcome.rows)


def rows_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Verdict rows with their margin (:func:`margin`) as a plain-text table."""
    cells = [
        (
            r.get("activation", ""),
            r.get("rule_id", ""),
            r.get("rule_version", ""),
            _num(r.get("measured")),
            _num(r.get("threshold")),
            r.get("unit", ""),
            _pct(margin(r)),
            r.get("status", ""),
        )
        for r in rows
    ]
    return table(
        ("activation", "rule", "version", "measured", "threshold", "unit", "margin", "status"),
        cells,
    )


def offender_table(outcome: AuditOutcome) -> str:
    """The audit's offenders (site, OEM, kind, detail) per activation; a line when none."""
    if not outcome.offenders:
        return "offenders: none (every site followed on its delivered power)"
    rows = [
        (
            o.get("activation_id", ""),
            o.get("site_id", ""),
            o.get("oem", ""),
            o.get("kind", ""),
            o.get("detail", ""),
        )
        for o in outcome.offenders
    ]
    return f"offenders: {len(rows)}\n" + table(
        ("activation", "site", "oem", "kind", "detail"), rows
    )


def check_table(checks: Sequence[Check]) -> str:
    rows = [
        (
            c.what,
            c.expected,
            c.actual,
            "ok" if c.ok else "MISMATCH",
        )
        for c in checks
    ]
    return table(("expectation", "expected", "audit", ""), rows)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}"


def _num(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("-" if value is None else str(value))


def run_audit(
    archive: Path, report: Path, logs: Path, interval_s: float, prefix: str
) -> AuditOutcome:
    """Judge ``archive`` (library call) and write the report (``flowerhub audit`` verb).

    The fleet series is built on the bridges' telemetry grid (``interval_s``) and FCR tests
    are judged at the TSO-allowed >= 1 Hz logging (TR25 §4.3): the simulated dongles, paced
    as the OEM maps require, cannot be polled at the 10 Hz of an FCR-D test logger.
    """
    from analytics.audit.extract import AuditInputError
    from analytics.audit.run import AuditOptions, audit_log

    outcome = AuditOutcome(report_dir=report)
    try:
        options = AuditOptions(allow_1hz=True, interval_s=interval_s, topic_prefix=prefix)
        result = audit_log(archive, options)
    except (AuditInputError, OSError) as exc:
        outcome.error = f"audit: {exc}"
        return outcome
    outcome.rows = result.rows()
    outcome.offenders = [o.as_dict() for r in result.results for o in r.offenders]
    report.mkdir(parents=True, exist_ok=True)
    (report / "demo-verdicts.json").write_text(
        json.dumps({"verdicts": outcome.rows, "offenders": outcome.offenders}, indent=2),
        encoding="utf-8",
    )
    outcome.error = _write_report(archive, report, logs, interval_s, prefix)
    return outcome


def _write_report(
    archive: Path, report: Path, logs: Path, interval_s: float, prefix: str
) -> str | None:
    """``flowerhub audit --log ARCHIVE --out REPORT`` (Markdown/HTML/plots); None when done."""
    from flowerhub.demo.processes import spawn, tail

    args = ["audit", "--log", str(archive), "--out", str(report), "--allow-1hz"]
    args += ["--interval", str(interval_s), "--prefix", prefix, "--no-progress"]
    child = spawn("audit", args, logs, cwd=report)
    code = child.proc.wait(timeout=600)
    if code not in (0, 1):  # 1: the audit found failures, which the demo compares itself
        return f"flowerhub audit exited with {code}:\n{tail(child.log)}"
    return None
