"""Fleet aggregation: window assignment, last-sample-per-site sums, late events."""

from __future__ import annotations

import pytest

from contract.enums import SiteMode
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.records import SiteTelemetry
from streams.steps.fleet_aggregation import FleetAggregator, TumblingWindows, window_start

S = 1_000_000
T0 = 1_700_000_000 * S
UUID = "00000000-0000-4000-8000-000000000000"


def tel(
    site: str,
    t: float,
    power: float,
    *,
    oem: str = "huawei",
    up: float = 2.0,
    down: float = 3.0,
    freq: float | None = 50.0,
    faulted: bool = False,
) -> SiteTelemetry:
    return SiteTelemetry(
        event_id=UUID,
        event_time=T0 + round(t * S),
        site_id=site,
        oem=oem,
        model="m",
        battery_power_kw=power,
        soc_pct=50.0,
        grid_power_kw=0.0,
        pv_power_kw=0.0,
        load_kw=0.5,
        headroom_up_kw=up,
        headroom_down_kw=down,
        max_discharge_kw=10.0,
        max_charge_kw=10.0,
        frequency_hz=freq,
        faulted=faulted,
        mode=SiteMode.REMOTE,
    )


@pytest.mark.parametrize(
    ("event_time", "window_s", "expected"),
    [
        (T0, 1, T0),
        (T0 + 999_999, 1, T0),
        (T0 + S, 1, T0 + S),
        (T0 + 12 * S, 10, T0 + 10 * S),
        (-1, 1, -S),
        (0, 10, 0),
    ],
)
def test_window_start(event_time: int, window_s: int, expected: int) -> None:
    assert window_start(event_time, window_s) == expected


def test_one_window_last_sample_per_site() -> None:
    agg = FleetAggregator("fleet", 1)
    state = agg.initialize()
    rows = [
        tel("a", 0.1, 4.0, freq=49.9),
        tel("b", 0.2, -2.0, oem="sungrow", up=1.0, down=1.0, freq=None),
        tel("a", 0.8, 6.0, freq=50.1),
        tel("a", 0.5, 100.0),  # older than the stored sample of site a: ignored
        tel("c", 0.9, 1.5, oem="sungrow", faulted=True, up=9.0, down=9.0, freq=49.8),
    ]
    for row in rows:
        state = agg.agg(state, row, row.event_time)
    out = agg.result(state, T0)
    assert (out.window_start, out.window_end, out.window_s) == (T0, T0 + S, 1)
    assert out.total_power_mw == pytest.approx((6.0 - 2.0 + 1.5) / 1000)
    assert out.headroom_up_mw == pytest.approx((2.0 + 1.0) / 1000)
    assert out.headroom_down_mw == pytest.approx((3.0 + 1.0) / 1000)
    assert (out.sites_online, out.sites_faulted) == (3, 1)
    assert out.mean_frequency_hz == pytest.approx((50.1 + 49.8) / 2)
    assert [(o.oem, o.sites_online, o.sites_faulted) for o in out.per_oem] == [
        ("huawei", 1, 0),
        ("sungrow", 2, 1),
    ]
    assert out.per_oem[1].power_mw == pytest.approx(-0.0005)
    assert out.event_time == out.window_end


def test_tumbling_windows_close_in_order_and_drop_late_events() -> None:
    windows = TumblingWindows(FleetAggregator("fleet", 1), grace_s=0.5)
    # (event, FleetStates emitted as (window offset s, total kW, sites))
    ticks: list[tuple[SiteTelemetry, list[tuple[int, float, int]]]] = [
        (tel("a", 0.1, 1.0), []),
        (tel("b", 0.7, 2.0), []),
        (tel("a", 1.2, 5.0), []),
        (tel("b", 1.4, 3.0), []),
        (tel("a", 1.6, 7.0), [(0, 3.0, 2)]),
        (tel("b", 0.9, 50.0), []),  # late: window 0 is closed
        (tel("a", 3.6, 1.0), [(1, 10.0, 2)]),
    ]
    for i, (row, expected) in enumerate(ticks):
        got = [
            ((fs.window_start - T0) // S, round(fs.total_power_mw * 1000, 9), fs.sites_online)
            for fs in windows.add(row)
        ]
        assert got == expected, f"tick {i}"
    assert windows.late_events == 1
    flushed = windows.flush()
    assert [((fs.window_start - T0) // S, fs.sites_online) for fs in flushed] == [(3, 1)]


def test_add_record_matches_add() -> None:
    a = TumblingWindows(FleetAggregator("fleet", 10))
    b = TumblingWindows(FleetAggregator("fleet", 10))
    rows = [tel(s, t, p) for s, t, p in [("a", 0.5, 1.0), ("b", 3.0, 2.5), ("a", 12.0, 3.0)]]
    for row in rows:
        assert a.add(row) == b.add_record(row.to_record())
    assert a.flush() == b.flush()


def test_bad_record_is_a_typed_error() -> None:
    windows = TumblingWindows(FleetAggregator("fleet", 1))
    record = tel("a", 0.0, 1.0).to_record()
    record["battery_power_kw"] = "lots"
    with pytest.raises(InvalidRecordError, match="battery_power_kw"):
        windows.add_record(record)


@pytest.mark.parametrize(("fleet", "window_s"), [("fleet", 0), ("", 1)])
def test_bad_aggregator_config(fleet: str, window_s: int) -> None:
    with pytest.raises(InvalidConfigError):
        FleetAggregator(fleet, window_s)


def test_bad_grace() -> None:
    with pytest.raises(InvalidConfigError):
        TumblingWindows(FleetAggregator("fleet", 1), grace_s=-1.0)


def test_windows_survive_a_restart_through_to_dict() -> None:
    rows = [tel("a", 0.2, 1.0), tel("b", 0.4, 2.0), tel("a", 1.3, 3.0), tel("b", 1.5, 4.0)]
    straight = TumblingWindows(FleetAggregator("fleet", 1))
    out_straight = [fs for r in rows for fs in straight.add(r)] + straight.flush()
    first = TumblingWindows(FleetAggregator("fleet", 1))
    out = [fs for r in rows[:3] for fs in first.add(r)]
    second = TumblingWindows(FleetAggregator("fleet", 1))
    second.restore(first.to_dict())
    out += [fs for r in rows[3:] for fs in second.add(r)] + second.flush()
    assert out == out_straight


def test_bad_window_snapshot_is_a_typed_error() -> None:
    with pytest.raises(InvalidRecordError):
        TumblingWindows(FleetAggregator("fleet", 1)).restore({"open": {"x": {}}})
