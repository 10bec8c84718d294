"""An activation window read once gives the frame the SQL aggregate gives, and the same traces.

The references are the rule itself (:func:`_reference_kw`, sample-and-hold by brute
force), :func:`analytics.audit.extract.fleet_frame` (the same rule in SQL: ``arg_max`` per
site and bucket, held by a range join) and, for the offenders, a read of exactly the fleet
series' range. Cases: two samples of a site in one bucket, a site that stops reporting
mid-window, a site missing one bucket (held) or three (dropped after the hold), the hold's
edge, a sample before the window held into it, ``hold_s=0`` (each site's last sample in
the bucket only), duplicate samples (at-least-once delivery), samples out of time order in
the log, buckets without frequency, samples at the window's edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.audit.extract import (
    Activation,
    AuditInputError,
    FleetFrame,
    first_telemetry_us,
    fleet_frame,
    to_us,
)
from analytics.audit.offenders import find_offenders, site_traces
from analytics.audit.run import AuditOptions, activation_data, audit_connection, scan_log
from analytics.audit.series import fleet_series
from analytics.audit.window import (
    read_window,
    window_bounds,
    window_fleet_frame,
)
from analytics.delivered import ARMED_FIELDS
from analytics.rules import judge
from analytics.testing.scenario import START_MS, LogBuilder, activation, telemetry
from analytics.timeseries import Series, SeriesError
from analytics.verdicts import TestType
from contract.enums import Product

T0_US = START_MS * 1000
# (site, ms from T0, kW, Hz or None), in the log's order
Sample = tuple[str, int, float, float | None]


def _log(*samples: Sample) -> list[Sample]:
    return list(samples)


def _table(samples: Sequence[Sample]) -> duckdb.DuckDBPyConnection:
    """A connection whose ``audit_site_telemetry`` holds ``samples`` in the given order."""
    con = duckdb.connect()
    con.execute("SET threads = 1")  # one thread: rows come back in insertion (log) order
    armed = ", ".join(f"{name} DOUBLE DEFAULT 0.0" for name in ARMED_FIELDS.values())
    con.execute(
        "CREATE TABLE audit_site_telemetry (key BLOB, event_time TIMESTAMP, oem VARCHAR, "
        f"battery_power_kw DOUBLE, frequency_hz DOUBLE, baseline_kw DOUBLE, {armed})"
    )
    if samples:
        con.executemany(
            "INSERT INTO audit_site_telemetry (key, event_time, oem, battery_power_kw, "
            "frequency_hz) VALUES (encode($1), make_timestamp($2), 'oem-' || $1, $3, $4)",
            [[s, T0_US + ms * 1000, kw, hz] for s, ms, kw, hz in samples],
        )
    return con


def _assert_same_frame(got: FleetFrame, want: FleetFrame) -> None:
    assert got.bucket_us == want.bucket_us
    assert got.t_us.tolist() == want.t_us.tolist()
    assert got.samples.tolist() == want.samples.tolist()
    np.testing.assert_allclose(got.power_mw, want.power_mw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.freq_hz, want.freq_hz, rtol=0, atol=1e-9, equal_nan=True)


def _reference_kw(
    samples: Sequence[Sample], bucket_ms: int, lo_ms: int, hi_ms: int, hold_ms: int
) -> dict[int, float]:
    """The rule by brute force: per bucket with a sample in [lo, hi), the sum over sites of
    the last sample in [max(lo, s) - hold, s + b) ∩ [lo - hold, hi) (s: the bucket's start)."""
    starts = sorted(
        {ms // bucket_ms * bucket_ms for _s, ms, _kw, _hz in samples if lo_ms <= ms < hi_ms}
    )
    out: dict[int, float] = {}
    for s in starts:
        total = 0.0
        for site in sorted({name for name, *_ in samples}):
            held = [
                (ms, kw)
                for name, ms, kw, _hz in samples
                if name == site and max(s, lo_ms) - hold_ms <= ms < min(s + bucket_ms, hi_ms)
            ]
            if held:
                total += max(held, key=lambda x: x[0])[1]  # equal times: equal values here
        out[s] = total
    return out


# (samples in log order, bucket ms, window [lo, hi) in ms, hold s,
#  expected (bucket ms, kW, Hz, n))
Case = tuple[list[Sample], int, tuple[int, int], float, list[tuple[int, float, float, int]]]
STEADY = [("b", k * 1000 + 100, 10.0, 50.0) for k in range(7)]  # one sample every bucket
CASES: dict[str, Case] = {
    "two samples of a site in a bucket: its last counts": (
        [("a", 0, 1.0, 50.0), ("b", 200, 4.0, 50.0), ("a", 500, 2.0, 49.9)],
        1000,
        (0, 1000),
        2.0,
        [(0, 6.0, (50.0 + 50.0 + 49.9) / 3, 3)],
    ),
    "a site stops reporting mid-window: held 2 s, then 0": (
        _log(
            *(("a", k * 1000, 1.0, 50.0) for k in range(5)),
            ("b", 10, 2.0, 49.8),
            ("b", 1010, 2.0, 49.8),
        ),
        1000,
        (0, 5000),
        2.0,
        # b's 1.010 s sample holds in the buckets starting 0.99 s and 1.99 s after it
        [
            (0, 3.0, 49.9, 2),
            (1000, 3.0, 49.9, 2),
            (2000, 3.0, 50.0, 1),
            (3000, 3.0, 50.0, 1),
            (4000, 1.0, 50.0, 1),
        ],
    ),
    "hold_s = 0: a site stops reporting, the old rule exactly": (
        _log(
            *(("a", k * 1000, 1.0, 50.0) for k in range(5)),
            ("b", 10, 2.0, 49.8),
            ("b", 1010, 2.0, 49.8),
        ),
        1000,
        (0, 5000),
        0.0,
        [(0, 3.0, 49.9, 2), (1000, 3.0, 49.9, 2)] + [(k * 1000, 1.0, 50.0, 1) for k in (2, 3, 4)],
    ),
    "a site missing one bucket: its last sample is held": (
        [*STEADY[:5], *(("a", k * 1000 + 300, float(k + 1), 50.0) for k in (0, 1, 3, 4))],
        1000,
        (0, 5000),
        2.0,
        [(k * 1000, 10.0 + (2.0 if k == 2 else k + 1), 50.0, 1 if k == 2 else 2) for k in range(5)],
    ),
    "hold_s = 0: a site missing one bucket counts 0 there": (
        [*STEADY[:5], *(("a", k * 1000 + 300, float(k + 1), 50.0) for k in (0, 1, 3, 4))],
        1000,
        (0, 5000),
        0.0,
        [(k * 1000, 10.0 + (0.0 if k == 2 else k + 1), 50.0, 1 if k == 2 else 2) for k in range(5)],
    ),
    "a site missing three buckets: held 2 s, then 0 until it reports again": (
        [*STEADY[:6], *(("a", k * 1000 + 300, float(k + 1), 50.0) for k in (0, 1, 5))],
        1000,
        (0, 6000),
        2.0,
        # a's 1.3 s sample: 0.7 s and 1.7 s old at the starts of buckets 2 and 3, 2.7 s at 4
        [
            (0, 11.0, 50.0, 2),
            (1000, 12.0, 50.0, 2),
            (2000, 12.0, 50.0, 1),
            (3000, 12.0, 50.0, 1),
            (4000, 10.0, 50.0, 1),
            (5000, 16.0, 50.0, 2),
        ],
    ),
    "a site that stops for good: held 2 s, then never again": (
        [*STEADY, *(("a", k * 1000 + 300, 5.0, 50.0) for k in range(3))],
        1000,
        (0, 7000),
        2.0,
        [(k * 1000, 15.0, 50.0, 2) for k in range(3)]
        + [(k * 1000, 15.0, 50.0, 1) for k in (3, 4)]
        + [(k * 1000, 10.0, 50.0, 1) for k in (5, 6)],
    ),
    "the hold's edge: a sample exactly hold_s before a bucket's start holds, 1 ms older not": (
        [*STEADY[:5], ("a", 1000, 1.0, 50.0), ("c", 999, 100.0, 50.0)],
        1000,
        (0, 5000),
        2.0,
        [
            (0, 110.0, 50.0, 2),
            (1000, 111.0, 50.0, 2),
            (2000, 111.0, 50.0, 1),
            (3000, 11.0, 50.0, 1),
            (4000, 10.0, 50.0, 1),
        ],
    ),
    "a sample before the window holds into its first buckets": (
        [("a", -500, 7.0, 51.0), ("a", -1500, 9.0, 51.0), *STEADY[:4]],
        1000,
        (0, 4000),
        2.0,
        # -0.5 s: 0.5 s and 1.5 s before buckets 0 and 1, 2.5 s before bucket 2
        [(0, 17.0, 50.0, 1), (1000, 17.0, 50.0, 1), (2000, 10.0, 50.0, 1), (3000, 10.0, 50.0, 1)],
    ),
    "duplicate samples count once for power": (
        [("a", 0, 1.0, 50.0), ("b", 300, 2.0, 49.7), ("a", 0, 1.0, 50.0)],
        1000,
        (0, 1000),
        2.0,
        [(0, 3.0, (50.0 + 49.7 + 50.0) / 3, 3)],
    ),
    "samples out of time order in the log": (
        [("a", 1500, 5.0, 50.0), ("a", 1200, 3.0, 50.0), ("a", 1000, 1.0, 50.0)],
        1000,
        (1000, 2000),
        2.0,
        [(1000, 5.0, 50.0, 3)],
    ),
    "a bucket without frequency is NaN, not 0 Hz": (
        [("a", 0, 1.0, None), ("a", 1000, 2.0, 50.1), ("b", 1100, -1.0, None)],
        1000,
        (0, 2000),
        2.0,
        [(0, 1.0, float("nan"), 1), (1000, 1.0, 50.1, 2)],
    ),
    "samples on the window's edges: [lo, hi)": (
        _log(
            ("a", 999, 9.0, 51.0),
            ("a", 1000, 1.0, 50.0),
            ("a", 2999, 2.0, 50.0),
            ("a", 3000, 9.0, 51.0),
        ),
        1000,
        (1000, 3000),
        2.0,
        [(1000, 1.0, 50.0, 1), (2000, 2.0, 50.0, 1)],
    ),
    "1 ms buckets, sparse over a long window: held 2 s": (
        [("a", 0, 1.0, 50.0), ("b", 100, 2.0, 50.0), ("a", 60_000, 3.0, 49.0)],
        1,
        (0, 120_000),
        2.0,
        [(0, 1.0, 50.0, 1), (100, 3.0, 50.0, 1), (60_000, 3.0, 49.0, 1)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_window_frame_is_the_sql_frame(name: str) -> None:
    samples, bucket_ms, (lo_ms, hi_ms), hold_s, want = CASES[name]
    con = _table(samples)
    lo, hi = T0_US + lo_ms * 1000, T0_US + hi_ms * 1000
    got = window_fleet_frame(read_window(con, lo, hi), bucket_ms, hold_s)
    assert got.t_us.tolist() == [T0_US + ms * 1000 for ms, _kw, _hz, _n in want]
    np.testing.assert_allclose(got.power_mw, [kw / 1000 for _ms, kw, _hz, _n in want], atol=1e-12)
    np.testing.assert_allclose(got.freq_hz, [hz for *_, hz, _n in want], atol=1e-9, equal_nan=True)
    assert got.samples.tolist() == [n for *_, n in want]
    reference = _reference_kw(samples, bucket_ms, lo_ms, hi_ms, round(hold_s * 1000))
    assert [kw for _ms, kw, _hz, _n in want] == pytest.approx(list(reference.values()), abs=1e-9)
    _assert_same_frame(got, fleet_frame(con, bucket_ms, lo, hi, hold_s=hold_s))


def test_equal_times_of_a_site_the_sample_read_last_counts() -> None:
    # SQL arg_max may take either; the window read defines it: the log's (archive) order
    con = _table([("a", 0, 1.0, 50.0), ("b", 0, 2.0, 50.0), ("a", 0, 4.0, 50.0)])
    got = window_fleet_frame(read_window(con, T0_US, T0_US + 1_000_000), 1000)
    assert got.power_mw.tolist() == [pytest.approx(0.006, abs=1e-15)]


def test_bad_windows_are_refused() -> None:
    con = _table([("a", 0, 1.0, 50.0)])
    with pytest.raises(AuditInputError, match="empty telemetry window"):
        read_window(con, T0_US, T0_US)
    with pytest.raises(AuditInputError, match="lookback"):
        read_window(con, T0_US, T0_US + 1, lookback_s=-1.0)
    empty = read_window(con, T0_US + 5_000_000, T0_US + 6_000_000)
    with pytest.raises(AuditInputError, match="no site telemetry"):
        window_fleet_frame(empty, 1000)
    with pytest.raises(AuditInputError, match="bucket"):
        window_fleet_frame(read_window(con, T0_US, T0_US + 1_000_000), 0)
    con.execute(
        "INSERT INTO audit_site_telemetry (key, event_time, oem, battery_power_kw, frequency_hz) "
        "VALUES (encode('b'), make_timestamp(?), 'x', NULL, 50.0)",
        [T0_US + 10],
    )
    with pytest.raises(AuditInputError, match="battery_power_kw"):
        read_window(con, T0_US, T0_US + 1_000_000)


def test_window_bounds_are_whole_buckets_within_the_range() -> None:
    start = np.datetime64(T0_US + 100_500_000, "us")
    act = Activation("a", Product.MFRR, TestType.ACTIVATION, "ORDER", start, start + 60_000_000)
    assert window_bounds(1000, act, pre_s=30.0) == (T0_US + 70_000_000, T0_US + 161_500_000)
    clipped = window_bounds(1000, act, since_us=T0_US + 80_000_123, until_us=T0_US + 120_000_000)
    assert clipped == (T0_US + 80_000_123, T0_US + 120_000_000)
    with pytest.raises(AuditInputError, match="bucket"):
        window_bounds(0, act)


def _fleet(lo_ms: int, hi_ms: int) -> Series:
    t = np.linspace(0.0, (hi_ms - lo_ms - 1) / 1000, 5)  # t1: the window's last ms
    zeros = np.zeros_like(t)
    return Series(t=t, power_mw=zeros, start=np.datetime64(T0_US + lo_ms * 1000, "us"))


@pytest.mark.parametrize("name", list(CASES))
def test_traces_from_a_wider_window_equal_an_exact_read(name: str) -> None:
    samples, _bucket_ms, (lo_ms, hi_ms), _hold_s, _want = CASES[name]
    con = _table([*samples, ("quiet", lo_ms - 600_000, 0.0, 50.0)])  # seen, then silent
    fleet = _fleet(lo_ms, hi_ms)
    wide = read_window(con, T0_US + (lo_ms - 5000) * 1000, T0_US + (hi_ms + 5000) * 1000)
    exact, exact_seen = site_traces(con, fleet)
    traces, seen = site_traces(con, fleet, window=wide)
    assert seen == exact_seen
    assert "quiet" in seen
    assert "quiet" not in traces
    assert list(traces) == list(exact)  # key order
    for site, trace in traces.items():
        assert trace.oem == exact[site].oem == f"oem-{site}"
        assert trace.t_s.tolist() == exact[site].t_s.tolist()
        assert trace.power_mw.tolist() == exact[site].power_mw.tolist()


@st.composite
def _logs(draw: st.DrawFn) -> tuple[list[Sample], int, int, int]:
    sites = draw(st.integers(1, 5))
    keys = draw(st.lists(st.tuples(st.integers(0, sites - 1), st.integers(0, 6000)), max_size=60))
    no_freq = draw(st.sets(st.integers(0, 6000), max_size=10))
    samples: list[Sample] = [
        # a sample's values follow from (site, time): a duplicate is the same event
        (f"s{i}", ms, float((7 * i + ms) % 13 - 6), None if ms in no_freq else 49.9 + i / 100)
        for i, ms in keys
    ]
    dupes = draw(st.lists(st.sampled_from(samples), max_size=5)) if samples else []
    order = draw(st.permutations([*samples, *dupes]))
    lo = draw(st.integers(0, 3000))
    hi = draw(st.integers(lo + 1, 7000))
    return list(order), draw(st.sampled_from([1, 250, 1000])), lo, hi


@settings(max_examples=60, deadline=None)
@given(log=_logs(), hold_s=st.sampled_from([0.0, 0.25, 1.0, 2.0]))
def test_any_log_window_frame_equals_the_sql_frame_and_the_rule(
    log: tuple[list[Sample], int, int, int], hold_s: float
) -> None:
    samples, bucket_ms, lo_ms, hi_ms = log
    con = _table(samples)
    lo, hi = T0_US + lo_ms * 1000, T0_US + hi_ms * 1000
    window = read_window(con, lo, hi)
    if window.t_us.size == 0:
        with pytest.raises(AuditInputError):
            window_fleet_frame(window, bucket_ms, hold_s)
        with pytest.raises(AuditInputError):
            fleet_frame(con, bucket_ms, lo, hi, hold_s=hold_s)
        return
    got = window_fleet_frame(window, bucket_ms, hold_s)
    _assert_same_frame(got, fleet_frame(con, bucket_ms, lo, hi, hold_s=hold_s))
    reference = _reference_kw(samples, bucket_ms, lo_ms, hi_ms, round(hold_s * 1000))
    assert got.t_us.tolist() == [T0_US + ms * 1000 for ms in reference]
    np.testing.assert_allclose(got.power_mw * 1000, list(reference.values()), atol=1e-9)
    assert np.all(np.diff(window.site) >= 0)  # (site, time) order
    same_site = window.site[1:] == window.site[:-1]
    assert np.all(np.diff(window.t_us)[same_site] >= 0)


def test_a_hold_is_never_less_than_the_old_rule_per_site() -> None:
    # one site reporting late every 3rd second: held it never dips, without hold it does
    samples = [("a", k * 1000 + (1200 if k % 3 == 2 else 300), 4.0, 50.0) for k in range(9)]
    samples += [("b", k * 1000 + 100, 1.0, 50.0) for k in range(10)]
    con = _table(samples)
    window = read_window(con, T0_US, T0_US + 10_000_000)
    held = window_fleet_frame(window, 1000, 2.0)
    old = window_fleet_frame(window, 1000, 0.0)
    assert held.power_mw.tolist() == pytest.approx([0.005] * 10)
    assert min(old.power_mw) == pytest.approx(0.001)  # the phantom dip the hold removes
    assert np.all(held.power_mw >= old.power_mw - 1e-12)


def test_bad_holds_are_refused() -> None:
    con = _table([("a", 0, 1.0, 50.0)])
    window = read_window(con, T0_US, T0_US + 1_000_000, lookback_s=1.0)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(AuditInputError, match="sample hold"):
            window_fleet_frame(window, 1000, bad)
        with pytest.raises(AuditInputError, match="sample hold"):
            fleet_frame(con, 1000, T0_US, T0_US + 1_000_000, hold_s=bad)
    with pytest.raises(AuditInputError, match="longer than the window's lookback"):
        window_fleet_frame(window, 1000, 1.5)
    assert window_fleet_frame(window, 1000, 1.0).power_mw.tolist() == [0.001]


@settings(max_examples=40, deadline=None)
@given(log=_logs(), cut=st.integers(0, 7000))
def test_first_telemetry_is_the_smallest_event_time(
    log: tuple[list[Sample], int, int, int], cut: int
) -> None:
    samples, _bucket_ms, lo_ms, hi_ms = log
    con = _table(samples)
    for since, until in ((None, None), (lo_ms, hi_ms), (cut, None), (None, cut)):
        inside = [
            ms
            for _s, ms, _kw, _hz in samples
            if (since is None or ms >= since) and (until is None or ms < until)
        ]
        got = first_telemetry_us(
            con,
            None if since is None else T0_US + since * 1000,
            None if until is None else T0_US + until * 1000,
        )
        assert got == (T0_US + min(inside) * 1000 if inside else None)


def _order_log(root: Path, missing: tuple[int, int] | None = None) -> Activation:
    """An mFRR order over 6 sites at 1 Hz: s1 sends every sample twice, s4 stops mid-window,
    s5 falls silent before it (STALE); the rest ramp up, s3 the wrong way. ``missing``:
    (site, second) of one sample left out."""
    b = LogBuilder(seed=3)
    order_s, length_s = 60, 600
    start_us = T0_US + order_s * 1_000_000
    end_us = start_us + length_s * 1_000_000
    activation(
        b,
        activation_id="order-1",
        product=Product.MFRR,
        kind="ORDER",
        start_us=start_us,
        end_us=end_us,
        requested_mw=0.06,
    )
    for i in range(6):
        site, oem = f"site-{i:05d}", ["huawei", "sungrow", "saj"][i % 3]
        stop_s = {4: 300, 5: 40}.get(i, order_s + length_s + 5)
        for s in range(stop_s):
            ramp = min(1.0, max(0.0, (s - order_s - 30) / 400)) * 10.0
            kw = -ramp if i == 3 else ramp
            us = T0_US + s * 1_000_000 + 13_000 * i
            for _copy in range(0 if (i, s) == missing else 2 if i == 1 else 1):
                telemetry(b, site, oem, event_us=us, power_kw=kw, freq_hz=50.0 + 0.001 * (s % 7))
    b.write(root)
    return Activation(
        "order-1",
        Product.MFRR,
        TestType.ACTIVATION,
        "ORDER",
        np.datetime64(start_us, "us"),
        np.datetime64(end_us, "us"),
        requested_mw=0.06,
        fleet_id="fleet-1",
    )


def test_an_archived_order_judged_the_same_as_by_the_sql_frame(tmp_path: Path) -> None:
    act = _order_log(tmp_path)
    opts = AuditOptions()
    con = audit_connection()
    try:
        scan = scan_log(con, opts, tmp_path)
        (found,) = scan.activations
        assert found == act
        data = activation_data(con, scan, found, opts)
        sql_data = activation_data(con, scan, found, opts, samples=False)  # the SQL frame
        assert data.window is not None
        assert sql_data.window is None
        sql = sql_data.series
        assert data.series.t.tolist() == sql.t.tolist()
        assert data.series.power_mw.tolist() == sql.power_mw.tolist()  # canonical: exact
        assert data.series.grid_freq_hz is not None
        assert sql.grid_freq_hz is not None
        assert data.series.grid_freq_hz.tolist() == sql.grid_freq_hz.tolist()
        got = judge(data.series, found.product, found.test_type)
        want = judge(sql, found.product, found.test_type)
        assert [v.as_dict() for v in got] == [v.as_dict() for v in want]
        from_window = find_offenders(con, found, data.series, window=data.window)
        from_exact_read = find_offenders(con, found, data.series)
    finally:
        con.close()
    assert from_window.offenders == from_exact_read.offenders
    kinds = {(o.site_id, o.kind) for o in from_window.offenders}
    assert ("site-00003", "WRONG_POLARITY") in kinds
    assert ("site-00004", "STALE") in kinds
    assert ("site-00005", "STALE") in kinds
    assert not any(site == "site-00001" for site, _kind in kinds)  # duplicates are no offence
    assert from_window.oem_response.keys() == from_exact_read.oem_response.keys()
    for oem, response in from_window.oem_response.items():
        assert response.tolist() == from_exact_read.oem_response[oem].tolist()


def test_a_missed_sample_in_an_archived_order_is_held_not_a_dip(tmp_path: Path) -> None:
    act = _order_log(tmp_path, missing=(2, 600))  # site 2 holds 10 kW by then
    con = audit_connection()
    try:
        scan = scan_log(con, AuditOptions(), tmp_path)
        series: dict[float, list[float]] = {}
        for hold_s in (2.0, 0.0):
            opts = AuditOptions(hold_s=hold_s)
            data = activation_data(con, scan, act, opts)
            sql = activation_data(con, scan, act, opts, samples=False).series
            assert data.series.power_mw.tolist() == sql.power_mw.tolist()
            assert data.series.start is not None
            start_s = (to_us(data.series.start) - T0_US) / 1e6
            at = np.flatnonzero(np.isclose(data.series.t + start_s, 600.0))
            series[hold_s] = data.series.power_mw[at[0] - 1 : at[0] + 2].tolist()
    finally:
        con.close()
    held, old = series[2.0], series[0.0]
    assert held == pytest.approx([held[0]] * 3, abs=1e-6)  # ramp at its top: flat
    assert old[1] == pytest.approx(held[1] - 0.01, abs=1e-6)  # 10 kW phantom dip
    assert old[0] == held[0]
    assert old[2] == held[2]


def test_a_bucket_without_frequency_is_refused_not_judged_at_0_hz() -> None:
    samples = [("a", k * 1000, 1.0, None if k == 40 else 50.0) for k in range(60)]
    con = _table(samples)
    start = np.datetime64(T0_US + 35_000_000, "us")
    act = Activation("a", Product.FCR_D_UP, TestType.OPERATION, "ORDER", start, start + 20_000_000)
    lo, hi = window_bounds(1000, act)
    frame = window_fleet_frame(read_window(con, lo, hi), 1000)
    assert np.isnan(frame.freq_hz[frame.t_us == T0_US + 40_000_000]).all()
    with pytest.raises(SeriesError, match="grid_freq_hz is not finite"):
        fleet_series(frame, act, interval_s=1.0, capacity_mw=0.01)


# (site, ms from T0, kW, baseline kW or None, FCR-N armed kW)
Stacked = tuple[str, int, float, float | None, float]


def _stacked_table(samples: Sequence[Stacked]) -> duckdb.DuckDBPyConnection:
    con = _table([])
    con.executemany(
        "INSERT INTO audit_site_telemetry (key, event_time, oem, battery_power_kw, "
        "frequency_hz, baseline_kw, armed_fcr_n_kw) VALUES "
        "(encode($1), make_timestamp($2), 'oem-' || $1, $3, 50.0, $4, $5)",
        [[s, T0_US + ms * 1000, kw, b, a] for s, ms, kw, b, a in samples],
    )
    return con


@settings(max_examples=60, deadline=None)
@given(
    samples=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(-3000, 9000),
            st.floats(-5, 5).map(lambda x: round(x, 3)),
            st.one_of(st.none(), st.floats(-3, 3).map(lambda x: round(x, 3))),
            st.sampled_from([0.0, 2.0]),
        ),
        min_size=1,
        max_size=40,
        unique_by=lambda s: (s[0], s[1]),
    ),
    hold_s=st.sampled_from([0.0, 1.0, 2.0]),
)
def test_baselines_and_armed_capacities_are_held_as_power_is(
    samples: list[Stacked], hold_s: float
) -> None:
    """The window read sums the sites' baselines and armed capacities with the same hold as
    power (a sample before the window held into it), exactly as the SQL frame does, and a
    baseline that is not reported counts 0 (None only when no site reported one)."""
    con = _stacked_table(samples)
    lo, hi = T0_US, T0_US + 6_000_000
    if not any(0 <= ms < 6000 for _s, ms, *_ in samples):
        return  # no sample in the window: both refuse it (test_bad_windows_are_refused)
    window = read_window(con, lo, hi, hold_s=hold_s)
    got = window_fleet_frame(window, 1000, hold_s)
    want = fleet_frame(con, 1000, lo, hi, hold_s=hold_s)
    _assert_same_frame(got, want)
    assert (got.baseline_mw is None) == (want.baseline_mw is None)
    if got.baseline_mw is not None and want.baseline_mw is not None:
        np.testing.assert_allclose(got.baseline_mw, want.baseline_mw, atol=1e-12)
        as_power = [(s, ms, b or 0.0, 50.0) for s, ms, _kw, b, _a in samples]
        reference = _reference_kw(as_power, 1000, 0, 6000, round(hold_s * 1000))
        np.testing.assert_allclose(got.baseline_mw * 1000, list(reference.values()), atol=1e-9)
    assert set(got.armed_mw) == set(want.armed_mw)
    for product, armed in got.armed_mw.items():
        np.testing.assert_allclose(armed, want.armed_mw[product], atol=1e-12)
    assert got.baseline_sites == want.baseline_sites
