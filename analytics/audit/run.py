"""Both audits: over the event-log archive and over SvK CSV files, through the same ``judge``.

:func:`audit_log` finds the activations in the archive (:mod:`analytics.audit.extract`),
builds the canonical fleet series of each, judges it, and adds the per-site offenders and
the dispatch-chain fits. :func:`audit_csv` reads SvK CSV files and judges each file's
series. Both call :func:`judge_activation`, so one rule has one implementation whatever the
source; sine-test periods of one product are judged together (Req 8/9) by
:func:`analytics.rules.judge_sine_set`.

An activation the rules cannot evaluate (a test sequence not found, too coarse sampling...)
is kept with its error: the audit could not show compliance, so it counts as a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from analytics.audit.chain import ChainFit, fit_chains
from analytics.audit.extract import (
    HOLD_S,
    Activation,
    AuditInputError,
    FleetFrame,
    assignment_capacity,
    detect_frequency_events,
    fleet_frame,
    fleet_ids,
    hold_rule,
    hold_us_of,
    logged_activations,
    scheduled_params,
    scope_views,
    telemetry_interval_ms,
    to_us,
)
from analytics.audit.offenders import Offender, find_offenders
from analytics.audit.series import baseline_note, fleet_series
from analytics.audit.window import (
    LOOKBACK_S,
    WindowSamples,
    read_window,
    window_bounds,
    window_fleet_frame,
)
from analytics.delivered import activated_column, other_products
from analytics.delivered import method_lines as delivered_method
from analytics.freqresp import T_FME_DEFAULT_S, PeriodFit
from analytics.rules import (
    REGISTRY,
    TestSignal,
    judge_each,
    judge_sine_set,
    method_lines,
    skipped_rules,
)
from analytics.rules.base import TR25, RuleError
from analytics.rules.sine import method_line, set_rule_ids
from analytics.svkcsv import SvkRecord, read_many
from analytics.svkcsv.errors import SvkCsvError
from analytics.timeseries import FloatArray, Series, SeriesError
from analytics.verdicts import TestType, Verdict
from contract.enums import Product
from contract.products import MARKET_PRODUCTS

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class AuditOptions:
    """What to audit and how; ``None`` = no filter / rule layer default."""

    product: Product | None = None
    since_us: int | None = None
    until_us: int | None = None
    rule_version: str | None = None
    allow_1hz: bool = False
    ffr_activation_hz: float | None = None
    interval_s: float | None = None  # event log: fleet series grid (default: telemetry rate)
    offenders: bool = True
    topic_prefix: str = ""  # the namespace to audit (a replay copy: its prefix)
    hold_s: float = HOLD_S  # event log: a site's last sample holds this long (fleet_frame)
    test_signal: TestSignal = TestSignal.UNKNOWN  # sine tests: how the frequency was applied
    t_fme_s: float = T_FME_DEFAULT_S  # sine tests, internal signal: T_FME (TSO default 1 s)


@dataclass
class ActivationResult:
    """One judged activation (or CSV file)."""

    activation: Activation
    series: Series | None
    verdicts: list[Verdict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None  # the activation as a whole could not be judged
    rule_errors: list[tuple[str, str]] = field(default_factory=list)  # (rule id, why)
    offenders: list[Offender] = field(default_factory=list)
    oem_response: dict[str, FloatArray] = field(default_factory=dict)
    oem_baseline: dict[str, FloatArray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how its series was built (the report)


@dataclass(frozen=True)
class SineSet:
    product: Product
    fits: list[PeriodFit]
    verdicts: list[Verdict]
    errors: list[tuple[str, str]] = field(default_factory=list)  # (rule id, why)


@dataclass
class AuditResult:
    source: str
    results: list[ActivationResult]
    sine_sets: list[SineSet] = field(default_factory=list)
    chain_sites: list[ChainFit] = field(default_factory=list)
    chain_oems: list[ChainFit] = field(default_factory=list)
    method: list[str] = field(default_factory=list)  # how the series were built (report)

    def rows(self) -> list[dict[str, object]]:
        """The verdict table: one row per judged requirement, one per unjudgeable activation."""
        out: list[dict[str, object]] = []
        for r in self.results:
            a = r.activation
            out.extend(verdict_row(a.activation_id, v) for v in r.verdicts)
            for rule_id, why in r.rule_errors:
                rule = REGISTRY.get(rule_id)
                out.append(
                    error_row(
                        a.activation_id,
                        a.product,
                        rule_id=rule_id,
                        version=rule.version,
                        requirement=rule.requirement,
                        why=why,
                    )
                )
            if r.error is not None:
                out.append(
                    {
                        "activation": a.activation_id,
                        "product": a.product.value,
                        "rule_id": "-",
                        "rule_version": "-",
                        "requirement": "activation could be judged",
                        "measured": None,
                        "threshold": None,
                        "unit": "",
                        "status": "ERROR",
                        "detail": r.error,
                    }
                )
        for s in self.sine_sets:
            name = f"sine-set-{s.product.value}"
            out.extend(verdict_row(name, v) for v in s.verdicts)
            out.extend(
                error_row(
                    name,
                    s.product,
                    rule_id=rule_id,
                    version=TR25,
                    requirement="judged over every sine period",
                    why=why,
                )
                for rule_id, why in s.errors
            )
        return out

    @property
    def failed(self) -> bool:
        return any(row["status"] != "PASS" for row in self.rows())

    def exit_code(self) -> int:
        return 1 if self.failed else 0


def verdict_row(activation_id: str, v: Verdict) -> dict[str, object]:
    """One verdict as a report row (verdicts.json, the tables)."""
    d = v.as_dict()
    return {
        "activation": activation_id,
        "product": d["product"],
        "rule_id": v.rule_id,
        "rule_version": v.rule_version,
        "requirement": v.requirement,
        "measured": d["measured"],
        "threshold": d["threshold"],
        "threshold_high": d["threshold_high"],
        "comparison": v.comparison,
        "unit": v.unit,
        "status": "PASS" if v.passed else "FAIL",
        "detail": v.detail,
        "other_reading": v.other_reading,
    }


def error_row(
    activation_id: str,
    product: Product,
    *,
    rule_id: str,
    version: str,
    requirement: str,
    why: str,
) -> dict[str, object]:
    """A requirement that could not be judged: an ERROR row naming it and why."""
    return {
        "activation": activation_id,
        "product": product.value,
        "rule_id": rule_id,
        "rule_version": version,
        "requirement": requirement,
        "measured": None,
        "threshold": None,
        "unit": "",
        "status": "ERROR",
        "detail": why,
    }


def judge_params(activation: Activation, opts: AuditOptions) -> dict[str, Any]:
    """The rule parameters of one activation; the same for log and CSV sources."""
    params: dict[str, Any] = {"allow_1hz": opts.allow_1hz}
    if activation.test_type is TestType.SINE:
        params["period_s"] = activation.period_s
    if activation.product is Product.FFR and opts.ffr_activation_hz is not None:
        params["ffr_activation_hz"] = opts.ffr_activation_hz
    return params


def judge_activation(
    activation: Activation, series: Series, opts: AuditOptions, params: dict[str, Any]
) -> ActivationResult:
    """Judge one series with the rule layer, rule by rule: a rule that cannot be evaluated
    is kept with its error (an ERROR row naming it) and the others are still judged."""
    result = ActivationResult(activation, series)
    try:
        result.verdicts, result.rule_errors = judge_each(
            series, activation.product, activation.test_type, opts.rule_version, **params
        )
        result.skipped = skipped_rules(
            series, activation.product, activation.test_type, opts.rule_version, **params
        )
    except (SeriesError, RuleError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def _sine_sets(results: Sequence[ActivationResult], opts: AuditOptions) -> list[SineSet]:
    """Req 8, Req 9 and the K_red,dyn check per product over its sine periods; always there
    (as ERROR rows when they cannot be judged), never dropped."""
    groups: dict[Product, dict[float, Series]] = {}
    for r in results:
        a = r.activation
        if a.test_type is TestType.SINE and r.series is not None and a.period_s is not None:
            groups.setdefault(a.product, {})[float(a.period_s)] = r.series
    out = []
    for product, records in groups.items():
        caps = [s.capacity_mw for s in records.values() if s.capacity_mw is not None]
        if not caps:
            why = "needs ΔP_ss,theo: no Cap_ column / ReserveAssignment in the sine records"
            out.append(SineSet(product, [], [], [(rid, why) for rid in set_rule_ids(product)]))
            continue
        dp_ss = float(np.median(np.abs(caps[0])))
        judged = judge_sine_set(
            records, product, dp_ss, signal=opts.test_signal, t_fme_s=opts.t_fme_s
        )
        # Req 10 per period is already a row of each period; the set adds Req 8, 9, K_red
        per_period = {r.rule_id for r in REGISTRY}
        set_verdicts = [v for v in judged.verdicts if v.rule_id not in per_period]
        out.append(SineSet(product, judged.fits, set_verdicts, judged.errors))
    return out


def audit_method(results: Sequence[ActivationResult], opts: AuditOptions) -> list[str]:
    """The report's Method lines for what was judged (policy, filters, readings)."""
    lines = method_lines({r.activation.product for r in results})
    if any(r.activation.test_type is TestType.SINE for r in results):
        lines.append(method_line(opts.test_signal, opts.t_fme_s))
        lines.append(
            "Sine tests, Req 8 sign (facts §2.4 UNCERTAIN): G0 = F·G with F normalised so an "
            "ideal droop is +1, the same curve as TR25's G0 = -F·G with F from +Δf to +ΔP; "
            "mixing the two would fail an ideal resource, so it is not shown as a reading."
        )
    return lines


def _quiet(done: int, total: int, label: str) -> None:
    del done, total, label


@dataclass(frozen=True)
class LogScan:
    """What one scan of the log found: the fleet frame (frequency only), grid, activations."""

    frame: FleetFrame
    interval_s: float
    activations: list[Activation]


def scan_log(
    con: duckdb.DuckDBPyConnection, opts: AuditOptions, archive_dir: Path | None = None
) -> LogScan:
    """Fleet frame (one DuckDB pass, frequency only) and every activation to judge.

    With ``archive_dir`` the audit views read only the audited topics' directories.
    """
    hold_us_of(opts.hold_s)  # a bad hold is refused before the scan
    scope_views(con, opts.topic_prefix, archive_dir)
    interval_ms = (
        round(opts.interval_s * 1000)
        if opts.interval_s is not None
        else telemetry_interval_ms(con, opts.since_us, opts.until_us)
    )
    if interval_ms < 1:
        raise AuditInputError(f"fleet series interval must be >= 1 ms, got {opts.interval_s} s")
    frame = fleet_frame(con, interval_ms, opts.since_us, opts.until_us, power=False)
    activations = logged_activations(con, opts.since_us, opts.until_us)
    covered = [(to_us(a.start), to_us(a.end)) for a in activations]
    wanted = set(MARKET_PRODUCTS) if opts.product is None else {opts.product}
    fleets = fleet_ids(con, opts.since_us, opts.until_us)
    activations += [
        replace(a, fleet_id=fleets[0] if len(fleets) == 1 else None)
        for a in detect_frequency_events(frame, covered, wanted)
    ]
    chosen = sorted(
        (a for a in activations if a.product in wanted), key=lambda a: (a.start, a.activation_id)
    )
    return LogScan(frame, interval_ms / 1000, chosen)


@dataclass(frozen=True)
class ActivationData:
    """What one activation is judged on: its canonical fleet series, the options to judge
    it with and the telemetry of its window (which the offenders read too)."""

    series: Series
    opts: AuditOptions
    window: WindowSamples | None  # None: not read (the series came from the SQL frame)
    notes: tuple[str, ...] = ()  # where its baseline came from, what was taken off


def activation_data(
    con: duckdb.DuckDBPyConnection,
    scan: LogScan,
    act: Activation,
    opts: AuditOptions,
    *,
    samples: bool = True,
) -> ActivationData:
    """The canonical fleet series of ``act``, its options and its window's telemetry.

    Capacity: ``|requested_mw|``, else the ReserveAssignment in force; the FFR option
    (``f_full_hz``) comes from that assignment unless given. With ``samples`` the window
    is read once (:func:`analytics.audit.window.read_window`) for the series and for the
    offenders; without, only the series is needed and the same frame comes from one SQL
    aggregate (:func:`analytics.audit.extract.fleet_frame`), which keeps no sample in
    memory (a long window holds ~10^8).
    """
    capacity: float | None = abs(act.requested_mw) if act.requested_mw else None
    assigned = assignment_capacity(con, act.product, to_us(act.start))
    if capacity is None and assigned is not None:
        capacity = assigned[0]
    local = opts
    if act.product is Product.FFR and opts.ffr_activation_hz is None and assigned is not None:
        local = replace(opts, ffr_activation_hz=assigned[1])
    bucket_ms = round(scan.interval_s * 1000)
    lo, hi = window_bounds(bucket_ms, act, since_us=opts.since_us, until_us=opts.until_us)
    window = (
        read_window(con, lo, hi, max(LOOKBACK_S, opts.hold_s), opts.hold_s) if samples else None
    )
    frame = (
        fleet_frame(con, bucket_ms, lo, hi, hold_s=opts.hold_s)
        if window is None
        else window_fleet_frame(window, bucket_ms, opts.hold_s)
    )
    series = fleet_series(frame, act, interval_s=scan.interval_s, capacity_mw=capacity)
    return ActivationData(series, local, window, series_notes(frame, act, series))


def series_notes(frame: FleetFrame, act: Activation, series: Series) -> tuple[str, ...]:
    """The report's lines on how ``act``'s series was built: baseline, other products."""
    notes = [baseline_note(frame, act)]
    others = other_products(series, act.product)
    if others:
        names = ", ".join(p.value for p in others)
        notes.append(
            f"also armed at the sites: {names}; their expected responses are taken off "
            f"before {act.product.value} is judged (Activated_* columns)"
        )
    return tuple(notes)


def activation_series(
    con: duckdb.DuckDBPyConnection, scan: LogScan, act: Activation, opts: AuditOptions
) -> tuple[Series, AuditOptions]:
    """The canonical fleet series of ``act`` and the options it is judged with."""
    data = activation_data(con, scan, act, opts, samples=False)
    return data.series, data.opts


def audit_connection() -> duckdb.DuckDBPyConnection:
    """A bare DuckDB connection for the audit's scoped views (:func:`scan_log`).

    Parquet footers are cached for the connection (the audit runs a few queries over the
    same files; DuckDB re-reads a footer whose file changed). DuckDB's own progress bar
    is off: the audit reports its progress itself (``progress``), and a long scan would
    otherwise draw over the caller's output.
    """
    con = duckdb.connect()
    con.execute("SET parquet_metadata_cache = true")
    con.execute("SET enable_progress_bar = false")
    return con


def audit_log(archive_dir: Path, opts: AuditOptions, progress: Progress = _quiet) -> AuditResult:
    """Audit every activation in the archive (see module doc)."""
    if not archive_dir.is_dir():
        raise AuditInputError(f"{archive_dir}: not a directory")
    con = audit_connection()
    try:
        scan = scan_log(con, opts, archive_dir)
        results: list[ActivationResult] = []
        total = len(scan.activations)
        for k, act in enumerate(scan.activations):
            progress(k, total, act.activation_id)
            results.append(_audit_one(con, scan, act, opts))
        progress(total, total, "activations judged")
        sites, oems = fit_chains(con, opts.since_us, opts.until_us)
    finally:
        con.close()
    method = [hold_rule(opts.hold_s), *delivered_method(), *audit_method(results, opts)]
    return AuditResult(str(archive_dir), results, _sine_sets(results, opts), sites, oems, method)


def _audit_one(
    con: duckdb.DuckDBPyConnection, scan: LogScan, act: Activation, opts: AuditOptions
) -> ActivationResult:
    try:
        data = activation_data(con, scan, act, opts, samples=opts.offenders)
    except (SeriesError, AuditInputError) as exc:
        return ActivationResult(act, None, error=f"{type(exc).__name__}: {exc}")
    series, local = data.series, data.opts
    params = judge_params(act, local)
    if series.start is not None:  # a TR25 test: ramps/steps from its schedule
        params.update(scheduled_params(act, series.start))
    result = judge_activation(act, series, local, params)
    result.notes = list(data.notes)
    if opts.offenders:
        try:
            analysis = find_offenders(con, act, series, judge_params=params, window=data.window)
        except (SeriesError, RuleError, AuditInputError) as exc:
            result.error = (result.error + "; " if result.error else "") + f"offenders: {exc}"
        else:
            result.offenders = analysis.offenders
            result.oem_response = analysis.oem_response
            result.oem_baseline = analysis.oem_baseline
    return result


def audit_csv(
    paths: Sequence[Path],
    opts: AuditOptions,
    *,
    test_type: TestType | None = None,
    progress: Progress = _quiet,
) -> AuditResult:
    """Audit SvK CSV files; a malformed file raises its :class:`SvkCsvError`."""
    records = read_many(paths, product=opts.product, test_type=test_type, allow_1hz=opts.allow_1hz)
    results = []
    for k, rec in enumerate(records):
        local = replace(opts, ffr_activation_hz=ffr_level(rec, opts.ffr_activation_hz))
        progress(k, len(records), rec.path.name)
        start = rec.series.start if rec.series.start is not None else np.datetime64(0, "us")
        end = start + np.timedelta64(int(float(rec.series.t[-1]) * 1e6), "us")
        act = Activation(
            activation_id=rec.path.stem,
            product=rec.name.product,
            test_type=rec.name.test_type,
            kind="CSV",
            start=start,
            end=end,
            period_s=rec.name.period_s,
            fleet_id=rec.name.resource,
        )
        result = judge_activation(act, rec.series, local, judge_params(act, local))
        result.notes = csv_notes(rec.series, act.product)
        results.append(result)
    progress(len(records), len(records), "files judged")
    return AuditResult(
        ", ".join(str(p) for p in paths),
        results,
        _sine_sets(results, opts),
        method=[*delivered_method(), *audit_method(results, opts)],
    )


def csv_notes(series: Series, product: Product) -> list[str]:
    """The report's lines on what an SvK CSV file's response is measured from."""
    if series.baseline_mw is not None:
        notes = ["baseline: the file's CalcBaseline column (delivered = InsAcPow - CalcBaseline)"]
    else:
        notes = [
            "baseline: the file has no CalcBaseline column; changes are measured against the "
            "pre-event level and polarity fits a constant offset"
        ]
    others = other_products(series, product)
    if others:
        columns = ", ".join(activated_column(p) for p in others)
        notes.append(
            f"other products' activated reserve taken off before {product.value} is judged: "
            f"{columns}"
        )
    return notes


def ffr_level(record: SvkRecord, option_hz: float | None) -> float | None:
    """The FFR activation level: ``--ffr-activation-hz``, else the file's name or column;
    both given and different is bad input (:class:`SvkCsvError` naming the file)."""
    found = record.ffr_activation_hz
    if option_hz is None or found is None:
        return option_hz if found is None else found
    if abs(option_hz - found) > 1e-6:
        raise SvkCsvError(
            record.path,
            f"--ffr-activation-hz {option_hz:g} contradicts the file's activation level "
            f"{found:g} Hz",
        )
    return option_hz
