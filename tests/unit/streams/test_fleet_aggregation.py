"""Fleet aggregation: window assignment, last-sample-per-site sums, late events."""

from __future__ import annotations

import pytest

from contract.enums import Product, SiteMode
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.records import FleetState, SiteTelemetry
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
    baseline: float | None = None,
    fcr_n: float = 0.0,
    fcrd_up: float = 0.0,
    ffr: float = 0.0,
    mfrr: float = 0.0,
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
        baseline_kw=baseline,
        armed_fcr_n_kw=fcr_n,
        armed_fcr_d_up_kw=fcrd_up,
        armed_ffr_kw=ffr,
        order_mfrr_kw=mfrr,
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


def _one_window(rows: list[SiteTelemetry]) -> FleetState:
    windows = TumblingWindows(FleetAggregator("fleet", 1))
    for r in rows:
        assert windows.add(r) == []
    (state,) = windows.flush()
    return state


def test_baseline_is_the_sum_of_the_sites_that_report_one() -> None:
    both = _one_window([tel("a", 0.1, 1.5, baseline=1.0), tel("b", 0.2, 2.0, baseline=0.5)])
    assert both.baseline_mw is not None
    assert both.baseline_mw == pytest.approx(0.0015)
    assert both.total_power_mw - both.baseline_mw == pytest.approx(0.002)  # delivered
    one = _one_window([tel("a", 0.1, 1.5, baseline=1.0), tel("b", 0.2, 2.0)])
    assert one.baseline_mw == pytest.approx(0.001)
    none = _one_window([tel("a", 0.1, 1.5), tel("b", 0.2, 2.0)])
    assert none.baseline_mw is None  # written before baselines: unknown, not 0
    assert none.products == ()


def test_products_sum_capacity_and_the_response_at_each_sites_frequency() -> None:
    """FCR-N 2 kW at 49.95 Hz (half up), 2 kW at 50.05 Hz (half down), 2 kW at an unknown
    frequency (the window's mean, 50.0: nothing); FCR-D up 4 kW at 49.7 Hz (half); FFR
    (49.7 Hz option) 3 kW at 49.7 Hz (all of it); an mFRR change of -1.5 kW."""
    state = _one_window(
        [
            tel("a", 0.1, 0.0, freq=49.95, fcr_n=2.0),
            tel("b", 0.2, 0.0, freq=50.05, fcr_n=2.0),
            tel("c", 0.3, 0.0, freq=None, fcr_n=2.0, mfrr=-1.5),
            tel("d", 0.4, 0.0, freq=49.7, fcrd_up=4.0, ffr=3.0),
            tel("e", 0.5, 0.0, freq=50.3),
        ]
    )
    assert state.mean_frequency_hz == pytest.approx(50.0)
    got = {p.product: (p.armed_mw, p.expected_mw) for p in state.products}
    assert got == {
        Product.FCR_N: pytest.approx((0.006, 0.0)),  # +1 kW and -1 kW
        Product.FCR_D_UP: pytest.approx((0.004, 0.002)),
        Product.FFR: pytest.approx((0.003, 0.003)),
        Product.MFRR: pytest.approx((0.0015, -0.0015)),
    }
    assert [p.product for p in state.products] == [
        Product.FCR_N,
        Product.FCR_D_UP,
        Product.FFR,
        Product.MFRR,
    ]


def test_window_snapshots_written_before_stacked_products_still_restore() -> None:
    old = {
        "open": {str(T0): {"a": [T0 + 1, 1.5, 2.0, 3.0, False, "saj", 50.0]}},
        "watermark": T0 + 1,
        "closed_before": None,
        "late_events": 0,
    }
    windows = TumblingWindows(FleetAggregator("fleet", 1))
    windows.restore(old)
    (state,) = windows.flush()
    assert (state.total_power_mw, state.baseline_mw, state.products) == (0.0015, None, ())
