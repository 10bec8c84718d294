"""Find activations and tests in the event log and build the fleet series each one is judged on.

Activations come from ``MarketActivation`` events (kind ORDER, TEST or FREQUENCY_EVENT) and,
for FCR-D and FFR, from frequency excursions in the fleet's mean telemetry frequency where no
activation event covers them (``detect_frequency_events``).

Fleet frame: per time bucket, the sum of each site's last ``battery_power_kw`` before the
bucket's end, held at most :data:`HOLD_S` (kW -> MW), and the mean ``frequency_hz``
(:func:`fleet_frame`, in SQL; the sites' baselines and armed capacities summed the same
way). The whole range is scanned once for frequency only; each activation's window is
read once with power (:mod:`analytics.audit.window`: the same frame from the window's
samples, which the offenders use too), reading only the telemetry topic's files and only
the columns it needs (the archive's typed columns; older files parse their JSON payload).
A bucket none of whose samples has a frequency has NaN (never 0 Hz), which the series
check refuses rather than judging. Per activation the frame becomes the series it is
judged on (:mod:`analytics.audit.series`: canonical form, baseline, the other products'
expected responses, capacity).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from analytics.archive.schema import default_layouts
from analytics.db import scoped_event_views, snake_case, sql_string, view_columns
from analytics.delivered import ARMED_FIELDS
from analytics.timeseries import FloatArray
from analytics.tr25 import FCRD_UP_RAMPS, FCRN_STEP_END_S, FCRN_STEPS
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import is_fcr_d
from contract.topics import topic_for_event

PRE_S = 30.0  # seconds of log before an activation (pre-event level, baseline)
# Sample-and-hold: a site's last sample counts in a later bucket that starts at most this
# long after it (2 x the 1 Hz telemetry interval: a late meter did not stop delivering)
HOLD_S = 2.0
_EXPAND_BUCKETS = 16  # fleet_frame: a hold over at most this many more buckets is expanded
FCR_EVENT_BANDS = {  # product -> (frequency test, threshold): an excursion activates it
    Product.FCR_D_UP: ("<", 49.9),
    Product.FCR_D_DOWN: (">", 50.1),
    Product.FFR: ("<", 49.7),
}
_SINE_RE = re.compile(r"sine_?(\d+)")
_TR25_RE = re.compile(r"tr\W*25")
# Standard TR25 schedules, seconds from the test's start_time (analytics.tr25).
TR25_RAMP_STARTS_S = tuple(start for start, _, _ in FCRD_UP_RAMPS)  # FCR-D up and down
# FCR-N: start of the holds at 50.0, 49.9, 50.1, 50.0 Hz and end of the last (step_bounds_s)
TR25_STEP_BOUNDS_S = (*(start for start, _ in FCRN_STEPS[2:]), FCRN_STEP_END_S)


BASELINE = "baseline_kw"
#: The per-sample values summed besides power: the site's baseline (NULL in events written
#: before baselines) and each product's armed capacity / order change in force.
EXTRA_FIELDS = (BASELINE, *ARMED_FIELDS.values())


class AuditInputError(ValueError):
    """The log (or a filter) cannot be audited as given: the message says why."""


@dataclass(frozen=True)
class Activation:
    """One activation or test to judge; times are naive-UTC ``datetime64[us]``."""

    activation_id: str
    product: Product
    test_type: TestType
    kind: str  # ORDER, TEST, FREQUENCY_EVENT (from the log or detected), CSV
    start: np.datetime64
    end: np.datetime64
    requested_mw: float = 0.0
    baseline_mw: float | None = None
    test_name: str | None = None
    period_s: int | None = None
    detected: bool = False
    fleet_id: str | None = None  # the fleet (log) or resource (SvK CSV file) it belongs to


@dataclass(frozen=True)
class FleetFrame:
    """Per-bucket fleet sums: bucket start (µs since epoch), MW, mean Hz, samples.

    ``baseline_mw``: the sites' baselines summed like power (a site that reports none counts
    0), None when no site reported one (events written before baselines);
    ``baseline_sites`` of ``sites`` reported one. ``armed_mw``: per product armed (or
    ordered) somewhere in the frame, the sites' capacities (order changes) summed like power.
    """

    bucket_us: int
    t_us: np.ndarray
    power_mw: FloatArray
    freq_hz: FloatArray
    samples: np.ndarray
    baseline_mw: FloatArray | None = None
    armed_mw: Mapping[Product, FloatArray] = field(default_factory=dict)
    baseline_sites: int = 0
    sites: int = 0


def to_us(value: np.datetime64 | datetime | str) -> int:
    """Microseconds since the epoch (naive UTC)."""
    stamp = value if isinstance(value, np.datetime64) else np.datetime64(value)
    return int(stamp.astype("datetime64[us]").astype(np.int64))


def activation_test_type(
    kind: str, product: Product, test_name: str | None
) -> tuple[TestType, int | None]:
    """Test type (and sine period) of a MarketActivation: kind and test name decide."""
    if kind == "TEST":
        name = (test_name or "").lower()
        sine = _SINE_RE.search(name)
        if sine:
            return TestType.SINE, int(sine[1])
        if "ramp" in name:
            return TestType.RAMP, None
        if "step" in name:
            return TestType.STEP, None
        if product in (Product.FFR, Product.AFRR, Product.MFRR):
            return TestType.ACTIVATION, None
        raise AuditInputError(
            f"test {test_name!r} of {product.value}: name says neither ramp, step nor sine<T>"
        )
    if product in (Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN):
        return TestType.OPERATION, None
    return TestType.ACTIVATION, None


def scheduled_params(activation: Activation, series_start: np.datetime64) -> dict[str, Any]:
    """Rule parameters placing a standard test's ramps/steps from its TR25 schedule.

    A TEST whose ``test_name`` names TR25 and the sequence (e.g. "FCR-D up ramp test TR25",
    "tr25_fcrn_step") follows TR25 Tables 3/4 from its ``start_time``: the ramp starts
    (``ramp_starts_s``, FCR-D) or hold bounds (``step_bounds_s``, FCR-N) are the schedule
    offset by the start, on the clock of the series starting at ``series_start``. The fleet's
    mean telemetry frequency is not needed to find them (at 1 Hz over many sites it smears
    the 4.9 s hold of ramp 1). No schedule known: ``{}``, the rules detect the ramps/steps
    from the series' frequency. Only ``tr25`` in the name promises TR25 timings: a test
    with other timings (the demo's time-compressed ``fcrd_up_ramp``) is detected.
    """
    if activation.kind != "TEST" or not _TR25_RE.search((activation.test_name or "").lower()):
        return {}
    offset = (to_us(activation.start) - to_us(series_start)) / 1e6
    if activation.test_type is TestType.RAMP and is_fcr_d(activation.product):
        return {"ramp_starts_s": tuple(offset + s for s in TR25_RAMP_STARTS_S)}
    if activation.test_type is TestType.STEP and activation.product is Product.FCR_N:
        return {"step_bounds_s": tuple(offset + s for s in TR25_STEP_BOUNDS_S)}
    return {}


def _where_time(column: str, since_us: int | None, until_us: int | None) -> str:
    parts = []
    if since_us is not None:
        parts.append(f"{column} >= make_timestamp({int(since_us)})")
    if until_us is not None:
        parts.append(f"{column} < make_timestamp({int(until_us)})")
    return " AND ".join(parts) if parts else "true"


AUDIT_EVENTS = (
    "SiteTelemetry",
    "MarketActivation",
    "ReserveAssignment",
    "SiteCommand",
    "CommandResult",
)


def scope_views(
    con: duckdb.DuckDBPyConnection, prefix: str = "", archive_dir: Path | None = None
) -> None:
    """Views ``audit_<event>``: each event view restricted to its own topic under ``prefix``.

    The archive may also hold replay copies (``<prefix><topic>``) of the same events; the
    audit reads exactly one namespace, so a copy never doubles the fleet's power. With
    ``archive_dir`` each view reads only its topic's directory (other topics' files are
    never opened); without it, the connection's event views filtered on ``topic``.
    """
    if archive_dir is not None:
        scoped_event_views(
            con,
            archive_dir,
            [(f"audit_{snake_case(e)}", e, prefix + topic_for_event(e).name) for e in AUDIT_EVENTS],
        )
        _note_typed_fields(con, "audit_site_telemetry__rows")
        return
    for event in AUDIT_EVENTS:
        view = snake_case(event)
        name = prefix + topic_for_event(event).name
        con.execute(
            f"CREATE OR REPLACE VIEW audit_{view} AS SELECT * FROM {view} "  # noqa: S608  # names from the schema, literal escaped
            f"WHERE topic = {sql_string(name)}"
        )
    _note_typed_fields(con, "archive_rows")


TYPED_FIELDS = "audit_typed_fields"


def _note_typed_fields(con: duckdb.DuckDBPyConnection, rows_view: str) -> None:
    """Table :data:`TYPED_FIELDS`: the :data:`EXTRA_FIELDS` the telemetry files hold as
    typed columns. Files written before baselines hold none: their rows would be parsed
    from the JSON payload only to find nothing (:func:`typed_extra_fields`)."""
    layout = {f.field: f.column for f in default_layouts()["SiteTelemetry"].fields}
    present = view_columns(con, rows_view)
    found = [name for name in EXTRA_FIELDS if layout.get(name) in present]
    con.execute(f"CREATE OR REPLACE TEMP TABLE {TYPED_FIELDS} (name VARCHAR)")
    if found:
        con.executemany(f"INSERT INTO {TYPED_FIELDS} VALUES (?)", [[n] for n in found])  # noqa: S608  # fixed name


def typed_extra_fields(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The :data:`EXTRA_FIELDS` the audited telemetry can hold (:func:`scope_views` noted
    them); all of them on a connection whose views were made otherwise."""
    try:
        rows = con.execute(f"SELECT name FROM {TYPED_FIELDS}").fetchall()  # noqa: S608  # fixed name
    except duckdb.CatalogException:
        return list(EXTRA_FIELDS)
    found = {str(r[0]) for r in rows}
    return [name for name in EXTRA_FIELDS if name in found]


def logged_activations(
    con: duckdb.DuckDBPyConnection, since_us: int | None = None, until_us: int | None = None
) -> list[Activation]:
    """Every MarketActivation overlapping [since, until) (last event per activation id)."""
    rows = con.execute(
        "SELECT activation_id, product, kind, requested_mw, start_time, end_time, test_name, "
        "baseline_mw, fleet_id FROM audit_market_activation WHERE product <> 'NONE' "
        "AND (CAST($1 AS BIGINT) IS NULL OR end_time >= make_timestamp(CAST($1 AS BIGINT))) "
        "AND (CAST($2 AS BIGINT) IS NULL OR start_time < make_timestamp(CAST($2 AS BIGINT))) "
        "QUALIFY row_number() OVER (PARTITION BY activation_id ORDER BY event_time DESC) = 1 "
        "ORDER BY start_time, activation_id",
        [since_us, until_us],
    ).fetchall()
    out = []
    for aid, product, kind, req, start, end, test_name, baseline, fleet in rows:
        prod = Product(product)
        test_type, period = activation_test_type(kind, prod, test_name)
        out.append(
            Activation(
                activation_id=str(aid),
                product=prod,
                test_type=test_type,
                kind=str(kind),
                start=np.datetime64(start, "us"),
                end=np.datetime64(end, "us"),
                requested_mw=float(req),
                baseline_mw=None if baseline is None else float(baseline),
                test_name=test_name,
                period_s=period,
                fleet_id=None if fleet is None else str(fleet),
            )
        )
    return out


def fleet_ids(
    con: duckdb.DuckDBPyConnection, since_us: int | None = None, until_us: int | None = None
) -> list[str]:
    """The fleets the log's activations and reserve assignments in [since, until) name."""
    rows = con.execute(
        "SELECT DISTINCT fleet_id FROM audit_market_activation "
        "WHERE (CAST($1 AS BIGINT) IS NULL OR end_time >= make_timestamp(CAST($1 AS BIGINT))) "
        "AND (CAST($2 AS BIGINT) IS NULL OR start_time < make_timestamp(CAST($2 AS BIGINT))) "
        "UNION SELECT DISTINCT fleet_id FROM audit_reserve_assignment "
        "WHERE (CAST($1 AS BIGINT) IS NULL OR valid_until >= make_timestamp(CAST($1 AS BIGINT))) "
        "AND (CAST($2 AS BIGINT) IS NULL OR valid_from < make_timestamp(CAST($2 AS BIGINT)))",
        [since_us, until_us],
    ).fetchall()
    return sorted(str(r[0]) for r in rows if r[0] is not None)


def first_telemetry_us(
    con: duckdb.DuckDBPyConnection, since_us: int | None, until_us: int | None
) -> int | None:
    """Event time (µs) of the first site telemetry in [since, until), None if there is none.

    Two queries that read a row group or two, not the range: any telemetry event time in
    the range (the first one read), then the smallest event time not after it; the second
    scan skips every row group whose event-time statistics start later, and the answer is
    exact (every earlier sample is in a row group that starts no later than it).
    """
    cond = _where_time("event_time", since_us, until_us)
    row = con.execute(
        f"SELECT epoch_us(event_time) FROM audit_site_telemetry WHERE {cond} "  # noqa: S608  # integers only
        "AND event_time IS NOT NULL LIMIT 1"
    ).fetchone()
    if row is None or row[0] is None:
        return None
    row = con.execute(
        f"SELECT epoch_us(min(event_time)) FROM audit_site_telemetry WHERE {cond} "  # noqa: S608  # integers only
        f"AND event_time <= make_timestamp({int(row[0])})"
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def telemetry_interval_ms(
    con: duckdb.DuckDBPyConnection, since_us: int | None, until_us: int | None
) -> int:
    """Median sample interval of one site's telemetry in the range's first 10 minutes, in ms.

    Reads only archive columns (Kafka key = site id, event time): no payload is parsed.
    The first event time (:func:`first_telemetry_us`), then the first 10 minutes from it,
    a range whose other row groups the scan skips by their statistics. Only the site's
    successive distinct times count (a duplicate sample is no interval).
    """
    first = first_telemetry_us(con, since_us, until_us)
    if first is None:
        raise AuditInputError("no site telemetry in the log for the requested time range")
    probe_until = first + 600_000_000
    if until_us is not None:
        probe_until = min(probe_until, until_us)
    window = _where_time("event_time", first, probe_until)
    row = con.execute(
        "WITH w AS (SELECT key, epoch_us(event_time) AS u FROM audit_site_telemetry "  # noqa: S608  # integers only
        f"WHERE {window}), "
        "one AS (SELECT key FROM w GROUP BY key ORDER BY count(*) DESC, key LIMIT 1) "
        "SELECT median(d) FROM (SELECT u - lag(u) OVER (ORDER BY u) AS d FROM w "
        "WHERE key = (SELECT key FROM one)) WHERE d > 0"
    ).fetchone()
    if row is None or row[0] is None:
        raise AuditInputError("no site telemetry in the log for the requested time range")
    return max(1, round(float(row[0]) / 1000))


def fleet_frame(
    con: duckdb.DuckDBPyConnection,
    bucket_ms: int,
    since_us: int | None,
    until_us: int | None,
    *,
    power: bool = True,
    hold_s: float = HOLD_S,
) -> FleetFrame:
    """One scan: fleet power (MW) and mean frequency per ``bucket_ms`` bucket.

    The buckets are those with a sample in [since, until). Fleet power of bucket [s, s + b)
    is the sum over sites (Kafka key = site id) of each site's last sample before s + b,
    provided it is at or after s - ``hold_s`` (sample-and-hold, :data:`HOLD_S`; else the
    site counts 0), as ``FleetState`` holds it: a site polled twice in a bucket counts
    once, a sample landing late in the next bucket leaves no phantom dip. Samples from
    since - hold_s are read for the first buckets. ``hold_s=0``: each site's last sample
    in the bucket only. Frequency is the mean of every sample of the bucket; samples counts
    them all. That needs a (site, bucket) aggregate, about one group per sample:
    ``power=False`` skips it (power is NaN) for a long range scanned only for its frequency
    (event detection); the activations' windows are then read with power, the same frame
    from the window's samples (:func:`analytics.audit.window.window_frame`). Frequency is
    NaN in a bucket none of whose samples has one.
    """
    b = int(bucket_ms) * 1000
    where = _where_time("event_time", since_us, until_us)
    # buckets are numbered (k = µs // b) and multiplied out in numpy: one multiply less per row
    if not power:
        query = (
            f"SELECT epoch_us(event_time) // {b} AS k, CAST('nan' AS DOUBLE), "  # noqa: S608  # integers only
            "avg(frequency_hz), count(*) FROM audit_site_telemetry "
            f"WHERE {where} GROUP BY k ORDER BY k"
        )
        rows = con.execute(query).fetchnumpy()
        keys = list(rows)
        if len(rows[keys[0]]) == 0:
            raise AuditInputError("no site telemetry in the log for the requested time range")
        return FleetFrame(
            bucket_us=b,
            t_us=np.asarray(rows[keys[0]], dtype=np.int64) * b,
            power_mw=_nan_for_null(rows[keys[1]]),
            freq_hz=_nan_for_null(rows[keys[2]]),
            samples=np.asarray(rows[keys[3]], dtype=np.int64),
        )
    hold_us = hold_us_of(hold_s)
    read = _where_time("event_time", None if since_us is None else since_us - hold_us, until_us)
    values = ["p", *(f"x{i}" for i in range(len(EXTRA_FIELDS)))]  # fixed column names
    typed = typed_extra_fields(con)  # the others are in no file: NULL, never parsed for
    extra = ", ".join(
        f"coalesce({name}, 0.0) AS x{i}" if name in typed else f"0.0 AS x{i}"
        for i, name in enumerate(EXTRA_FIELDS)
    )
    names = ", ".join(values)
    last_of = ", ".join(f"arg_max({v}, u) AS {v}" for v in values)
    query = (
        "WITH s AS (SELECT key, epoch_us(event_time) AS u, battery_power_kw AS p, "  # noqa: S608  # fixed names, integers
        f"{extra}, frequency_hz AS f FROM audit_site_telemetry WHERE {read}), "
        f"per_site AS (SELECT key, u // {b} AS k, {last_of}, max(u) AS t FROM s GROUP BY key, k), "
        f"held AS (SELECT k, {names}, least((t + {hold_us}) // {b}, "
        "coalesce(lead(k) OVER (PARTITION BY key ORDER BY k) - 1, k + 1 + "
        f"{hold_us // b})) AS k_end FROM per_site), "
        f"present AS (SELECT u // {b} AS k, sum(f) / count(f) AS fz, count(*) AS n FROM s "
        f"WHERE {'true' if since_us is None else f'u >= {int(since_us)}'} GROUP BY k), "
    )
    if hold_us // b <= _EXPAND_BUCKETS:  # each sample into its few buckets: a hash join
        sums = ", ".join(f"sum({v}) AS {v}" for v in values)
        mw = ", ".join(f"kw.{v} / 1000.0 AS {v}" for v in values)
        query += (
            f"spread AS (SELECT unnest(generate_series(k, k_end)) AS k, {names} FROM held), "  # noqa: S608  # fixed names
            f"kw AS (SELECT k, {sums} FROM spread SEMI JOIN present USING (k) GROUP BY k) "
            f"SELECT present.k, present.fz, present.n, {mw} "
            "FROM present LEFT JOIN kw USING (k) ORDER BY present.k"
        )
    else:  # a hold over many (fine) buckets: a range join
        mw = ", ".join(f"sum(held.{v}) / 1000.0 AS {v}" for v in values)
        query += (
            f"SELECT present.k, any_value(present.fz) AS fz, any_value(present.n) AS n, {mw} "  # noqa: S608  # fixed names
            "FROM present JOIN held ON present.k >= held.k AND present.k <= held.k_end "
            "GROUP BY present.k ORDER BY present.k"
        )
    rows = con.execute(query).fetchnumpy()
    if len(rows["k"]) == 0:
        raise AuditInputError("no site telemetry in the log for the requested time range")
    totals = {name: _nan_for_null(rows[f"x{i}"]) for i, name in enumerate(EXTRA_FIELDS)}
    reported, sites = (
        _baseline_sites(con, since_us, until_us, hold_us) if BASELINE in typed else (0, 0)
    )
    return FleetFrame(
        bucket_us=b,
        t_us=np.asarray(rows["k"], dtype=np.int64) * b,
        power_mw=_nan_for_null(rows["p"]),
        freq_hz=_nan_for_null(rows["fz"]),
        samples=np.asarray(rows["n"], dtype=np.int64),
        baseline_mw=np.nan_to_num(totals[BASELINE], nan=0.0) if reported else None,
        armed_mw={
            p: np.nan_to_num(totals[name], nan=0.0)
            for p, name in ARMED_FIELDS.items()
            if np.any(np.nan_to_num(totals[name], nan=0.0) != 0.0)
        },
        baseline_sites=reported,
        sites=sites,
    )


def _baseline_sites(
    con: duckdb.DuckDBPyConnection, since_us: int | None, until_us: int | None, hold_us: int
) -> tuple[int, int]:
    """(sites that reported a baseline, sites with a sample) in [since, until): a baseline in
    a sample there, or in the site's last sample before ``since`` if the hold carries it in
    (:meth:`analytics.audit.window.WindowSamples.baseline_sites`, the same count)."""
    inside = _where_time("event_time", since_us, until_us)
    if since_us is None:
        row = con.execute(
            "SELECT count(DISTINCT key) FILTER (WHERE baseline_kw IS NOT NULL), "  # noqa: S608  # integers only
            f"count(DISTINCT key) FROM audit_site_telemetry WHERE {inside}"
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))
    held = _where_time("event_time", since_us - hold_us, since_us)
    row = con.execute(
        "WITH w AS (SELECT key, count(*) FILTER (WHERE baseline_kw IS NOT NULL) AS b "  # noqa: S608  # integers only
        f"FROM audit_site_telemetry WHERE {inside} GROUP BY key), "
        "p AS (SELECT key, arg_max(baseline_kw IS NOT NULL, event_time) AS b "
        f"FROM audit_site_telemetry WHERE {held} GROUP BY key) "
        "SELECT count(*) FILTER (WHERE coalesce(w.b, 0) > 0 OR coalesce(p.b, false)), "
        "count(w.key) FROM w FULL JOIN p USING (key)"
    ).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def hold_us_of(hold_s: float) -> int:
    """``hold_s`` in whole µs; a negative or non-finite hold is an :class:`AuditInputError`."""
    if not np.isfinite(hold_s) or hold_s < 0:
        raise AuditInputError(f"sample hold must be a finite number >= 0 s, got {hold_s}")
    return round(hold_s * 1e6)


def hold_rule(hold_s: float) -> str:
    """The fleet power rule in one line, for the report."""
    return (
        "fleet power per bucket = sum over sites of each site's last battery_power_kw sample "
        f"before the bucket's end, held at most {hold_s:g} s (a sample older than that at the "
        "bucket's start: the site counts 0)"
    )


def _nan_for_null(column: np.ndarray) -> FloatArray:
    """A fetched DOUBLE column as float64, NULL (masked) as NaN."""
    filled = np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
    return np.asarray(filled, dtype=np.float64)


def detect_frequency_events(
    frame: FleetFrame,
    covered: list[tuple[int, int]],
    products: set[Product],
    *,
    min_s: float = 1.0,
    post_s: float = 60.0,
) -> list[Activation]:
    """FCR-D / FFR activations from excursions of the fleet mean frequency (see module doc).

    An excursion beyond the product's band edge lasting ``min_s`` or more, and not inside
    an activation the log already has (``covered``: (start_us, end_us)), becomes a
    FREQUENCY_EVENT from its first sample to ``post_s`` after it ends.
    """
    out = []
    for product, (op, level) in FCR_EVENT_BANDS.items():
        if product not in products:
            continue
        f = frame.freq_hz
        beyond = f < level if op == "<" else f > level
        edges = np.diff(np.concatenate(([0], beyond.astype(np.int8), [0])))
        for i0, i1 in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            t0, t1 = int(frame.t_us[i0]), int(frame.t_us[i1 - 1]) + frame.bucket_us
            if (t1 - t0) / 1e6 < min_s or any(s <= t0 < e for s, e in covered):
                continue
            end = min(t1 + int(post_s * 1e6), int(frame.t_us[-1]))
            stamp = np.datetime64(t0, "us")
            out.append(
                Activation(
                    activation_id=f"freq-{product.value}-{np.datetime_as_string(stamp, 's')}",
                    product=product,
                    test_type=TestType.ACTIVATION if product is Product.FFR else TestType.OPERATION,
                    kind="FREQUENCY_EVENT",
                    start=stamp,
                    end=np.datetime64(end, "us"),
                    detected=True,
                )
            )
    return out


def assignment_capacity(
    con: duckdb.DuckDBPyConnection, product: Product, at_us: int
) -> tuple[float, float | None] | None:
    """(capacity MW, f_full_hz) of the latest ReserveAssignment of ``product`` valid at ``at``."""
    row = con.execute(
        "SELECT capacity_mw, f_full_hz FROM audit_reserve_assignment WHERE product = ? "
        "AND valid_from <= make_timestamp(?) AND valid_until > make_timestamp(?) "
        "ORDER BY event_time DESC LIMIT 1",
        [product.value, at_us, at_us],
    ).fetchone()
    return None if row is None else (float(row[0]), None if row[1] is None else float(row[1]))
