"""Hypothesis: the fleet aggregation windows equal a brute-force computation."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.enums import SiteMode
from contract.records import FleetState, SiteTelemetry
from streams.steps.fleet_aggregation import FleetAggregator, TumblingWindows

S = 1_000_000
T0 = 1_700_000_000 * S

events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.integers(0, 35 * S - 1),  # event time offset
        st.floats(-10.0, 10.0, allow_nan=False),
        st.floats(0.0, 10.0, allow_nan=False),
        st.booleans(),
        st.sampled_from(["huawei", "sungrow", "saj"]),
        st.one_of(st.none(), st.floats(49.0, 51.0, allow_nan=False)),
    ),
    max_size=80,
)
Event = tuple[str, int, float, float, bool, str, float | None]


def _tel(e: Event) -> SiteTelemetry:
    site, offset, power, up, faulted, oem, freq = e
    return SiteTelemetry(
        event_id="00000000-0000-4000-8000-000000000000",
        event_time=T0 + offset,
        site_id=site,
        oem=oem,
        model="m",
        battery_power_kw=power,
        soc_pct=50.0,
        grid_power_kw=0.0,
        pv_power_kw=0.0,
        load_kw=0.0,
        headroom_up_kw=up,
        headroom_down_kw=up / 2,
        max_discharge_kw=10.0,
        max_charge_kw=10.0,
        frequency_hz=freq,
        faulted=faulted,
        mode=SiteMode.REMOTE,
    )


def _brute(rows: list[SiteTelemetry], window_s: int) -> dict[int, tuple[float, ...]]:
    size = window_s * S
    out: dict[int, tuple[float, ...]] = {}
    for start in sorted({r.event_time // size * size for r in rows}):
        last: dict[str, SiteTelemetry] = {}
        for r in rows:  # input order: a later sample with an equal time wins
            in_window = start <= r.event_time < start + size
            if in_window and (r.site_id not in last or r.event_time >= last[r.site_id].event_time):
                last[r.site_id] = r
        vals = list(last.values())
        ok = [v for v in vals if not v.faulted]
        freqs = [v.frequency_hz for v in vals if v.frequency_hz is not None]
        out[start] = (
            sum(v.battery_power_kw for v in vals) / 1000,
            sum(v.headroom_up_kw for v in ok) / 1000,
            sum(v.headroom_down_kw for v in ok) / 1000,
            len(vals),
            sum(1 for v in vals if v.faulted),
            sum(freqs) / len(freqs) if freqs else math.nan,
        )
    return out


def _figures(fs: FleetState) -> tuple[float, ...]:
    freq = math.nan if fs.mean_frequency_hz is None else fs.mean_frequency_hz
    return (
        fs.total_power_mw,
        fs.headroom_up_mw,
        fs.headroom_down_mw,
        fs.sites_online,
        fs.sites_faulted,
        freq,
    )


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(
        (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=300, deadline=None)
@given(events, st.sampled_from([1, 10]))
def test_windows_equal_brute_force_when_nothing_is_late(raw: list[Event], window_s: int) -> None:
    rows = [_tel(e) for e in raw]
    windows = TumblingWindows(FleetAggregator("fleet", window_s), grace_s=3600.0)
    emitted = [fs for r in rows for fs in windows.add(r)] + windows.flush()
    assert windows.late_events == 0
    expected = _brute(rows, window_s)
    assert [fs.window_start for fs in emitted] == sorted(expected)
    for fs in emitted:
        assert _close(_figures(fs), expected[fs.window_start])
        assert sum(o.sites_online for o in fs.per_oem) == fs.sites_online
        assert math.isclose(sum(o.power_mw for o in fs.per_oem), fs.total_power_mw, abs_tol=1e-9)


@settings(max_examples=300, deadline=None)
@given(events)
def test_with_late_events_every_event_is_counted_once(raw: list[Event]) -> None:
    rows = [_tel(e) for e in raw]
    windows = TumblingWindows(FleetAggregator("fleet", 1), grace_s=0.0)
    emitted = [fs for r in rows for fs in windows.add(r)] + windows.flush()
    starts = [fs.window_start for fs in emitted]
    assert starts == sorted(set(starts))  # each window emitted once, in order
    # the accepted events are exactly the non-late ones: brute force over them matches
    accepted: list[SiteTelemetry] = []
    closed_before: int | None = None
    watermark: int | None = None
    for r in rows:
        start = r.event_time // S * S
        if closed_before is None or start >= closed_before:
            accepted.append(r)
        watermark = r.event_time if watermark is None else max(watermark, r.event_time)
        ends = [
            a.event_time // S * S + S for a in accepted if a.event_time // S * S + S <= watermark
        ]
        if ends:
            closed_before = max(ends + ([closed_before] if closed_before else []))
    assert len(accepted) + windows.late_events == len(rows)
    expected = _brute(accepted, 1)
    assert sorted(expected) == starts
    for fs in emitted:
        assert _close(_figures(fs), expected[fs.window_start])
