"""Fleet power counts each site once per bucket; TR25 tests are judged on their schedule."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from analytics.audit.extract import (
    TR25_RAMP_STARTS_S,
    TR25_STEP_BOUNDS_S,
    Activation,
    fleet_frame,
    scheduled_params,
    scope_views,
)
from analytics.audit.window import window_frame
from analytics.rules import judge
from analytics.rules.base import TestSequenceError
from analytics.testing.scenario import START_MS, LogBuilder, telemetry
from analytics.testing.sequences import simulate_fcr_test
from analytics.testing.synthetic import site_id
from analytics.timeseries import Series
from analytics.verdicts import TestType
from contract.enums import Product

T0 = np.datetime64(START_MS, "ms").astype("datetime64[us]")


@pytest.mark.parametrize(
    ("fast_kw", "slow_kw", "want_kw"),
    [
        # fast site: two samples per 1 s bucket (at 0 and 500 ms); slow site: one (at 200 ms)
        (((1.0, 2.0), (3.0, 5.0)), (4.0, 6.0), (2.0 + 4.0, 5.0 + 6.0)),
        (((-1.5, 0.5), (0.0, 0.0)), (-2.0, 1.0), (0.5 - 2.0, 0.0 + 1.0)),
        (((7.0, 7.0), (-3.0, 3.0)), (0.0, 0.0), (7.0, 3.0)),
    ],
)
def test_fleet_power_counts_each_sites_last_sample_once(
    tmp_path: Path,
    fast_kw: tuple[tuple[float, float], ...],
    slow_kw: tuple[float, ...],
    want_kw: tuple[float, ...],
) -> None:
    b = LogBuilder()
    base_us = START_MS * 1000
    freqs = []
    for k, (pair, slow) in enumerate(zip(fast_kw, slow_kw, strict=True)):
        for j, kw in enumerate(pair):
            f = 49.9 + 0.01 * j
            freqs.append((k, f))
            us = base_us + k * 1_000_000 + j * 500_000
            telemetry(b, site_id(0), "huawei", event_us=us, power_kw=kw, freq_hz=f)
        us = base_us + k * 1_000_000 + 200_000
        telemetry(b, site_id(1), "saj", event_us=us, power_kw=slow, freq_hz=50.0)
        freqs.append((k, 50.0))
    b.write(tmp_path)
    con = duckdb.connect()
    try:
        scope_views(con, "", tmp_path)
        frame = fleet_frame(con, 1000, None, None)
        cheap = fleet_frame(con, 1000, None, None, power=False)
        act = Activation(
            "a",
            Product.FCR_D_UP,
            TestType.OPERATION,
            "ORDER",
            T0 + np.timedelta64(1, "s"),
            T0 + np.timedelta64(len(want_kw), "s"),
        )
        window = window_frame(con, 1000, act, pre_s=1.0)
    finally:
        con.close()
    assert frame.t_us.tolist() == [base_us + k * 1_000_000 for k in range(len(want_kw))]
    np.testing.assert_allclose(frame.power_mw, np.array(want_kw) / 1000.0, atol=1e-12)
    assert frame.samples.tolist() == [3] * len(want_kw)
    want_f = [np.mean([f for kk, f in freqs if kk == k]) for k in range(len(want_kw))]
    np.testing.assert_allclose(frame.freq_hz, want_f, atol=1e-9)
    # the frequency-only scan and an activation's window: the same buckets and values
    np.testing.assert_allclose(cheap.freq_hz, frame.freq_hz, atol=1e-12)
    assert cheap.samples.tolist() == frame.samples.tolist()
    assert np.all(np.isnan(cheap.power_mw))
    assert window.t_us.tolist() == frame.t_us.tolist()
    np.testing.assert_allclose(window.power_mw, frame.power_mw, atol=1e-12)


def _activation(product: Product, test_type: TestType, kind: str, name: str | None) -> Activation:
    start = T0 + np.timedelta64(5, "s")
    return Activation(
        "a", product, test_type, kind, start, start + np.timedelta64(1100, "s"), test_name=name
    )


@pytest.mark.parametrize(
    ("product", "test_type", "kind", "name", "want"),
    [
        (Product.FCR_D_UP, TestType.RAMP, "TEST", "FCR-D up ramp test (TR25)", "ramp"),
        (Product.FCR_D_DOWN, TestType.RAMP, "TEST", "tr25_fcrd_down_ramp", "ramp"),
        (Product.FCR_N, TestType.STEP, "TEST", "TR-25 fcrn_step", "step"),
        (Product.FCR_D_UP, TestType.RAMP, "TEST", "fcrd_up_ramp", None),  # demo: own timings
        (Product.FCR_D_UP, TestType.OPERATION, "FREQUENCY_EVENT", "tr25 ramp", None),
        (Product.FCR_N, TestType.SINE, "TEST", "tr25_fcrn_sine40", None),
        (Product.MFRR, TestType.ACTIVATION, "TEST", "tr25", None),
        (Product.FCR_D_UP, TestType.RAMP, "TEST", None, None),
    ],
)
def test_scheduled_params_offset_by_the_activation_start(
    product: Product, test_type: TestType, kind: str, name: str | None, want: str | None
) -> None:
    got = scheduled_params(_activation(product, test_type, kind, name), T0)
    if want is None:
        assert got == {}
    elif want == "ramp":
        assert got == {"ramp_starts_s": tuple(5.0 + s for s in TR25_RAMP_STARTS_S)}
    else:
        assert got == {"step_bounds_s": tuple(5.0 + s for s in TR25_STEP_BOUNDS_S)}


def _smeared(series: Series, window_s: float) -> Series:
    """The series with only a grid frequency, a moving mean over ``window_s`` of the applied."""
    assert series.applied_freq_hz is not None
    n = round(window_s / float(series.t[1] - series.t[0]))
    f = series.applied_freq_hz
    padded = np.concatenate((np.full(n - 1, f[0]), f))
    smeared = np.convolve(padded, np.ones(n) / n, mode="valid")
    return Series(
        t=series.t,
        start=series.start,
        power_mw=series.power_mw,
        grid_freq_hz=smeared,
        baseline_mw=series.baseline_mw,
        capacity_mw=series.capacity_mw,
    )


def test_a_tr25_ramp_test_is_judged_on_its_schedule_when_the_frequency_is_smeared() -> None:
    sim = simulate_fcr_test(Product.FCR_D_UP, "ramp", dp_ss_mw=2.0, tau_s=1.5, dead_time_s=1.0)
    # the log's series starts 5 s before the test (a pre-window): shift the clock
    pre = np.arange(0.0, 5.0, 0.1)
    t = np.concatenate((pre, sim.t + 5.0))

    def ext(v: np.ndarray | None) -> np.ndarray:
        assert v is not None
        return np.concatenate((np.full(pre.shape, v[0]), v))

    exact = Series(
        t=t,
        start=T0,
        power_mw=ext(sim.power_mw),
        applied_freq_hz=ext(sim.applied_freq_hz),
        grid_freq_hz=ext(sim.grid_freq_hz),
        baseline_mw=ext(sim.baseline_mw),
        capacity_mw=ext(sim.capacity_mw),
    )
    smeared = _smeared(exact, 6.0)
    act = _activation(Product.FCR_D_UP, TestType.RAMP, "TEST", "fcrd_up_ramp_tr25")
    with pytest.raises(TestSequenceError, match="ramp"):
        judge(smeared, Product.FCR_D_UP, TestType.RAMP)
    params = scheduled_params(act, T0)
    on_schedule = judge(smeared, Product.FCR_D_UP, TestType.RAMP, **params)
    detected = judge(exact, Product.FCR_D_UP, TestType.RAMP)
    assert [v.rule_id for v in on_schedule] == [v.rule_id for v in detected]
    # a first-order response approaches 100 % from below: the legacy "100 % within 30 s"
    # is never full (no tolerance), on both paths alike
    assert [v.rule_id for v in on_schedule if not v.passed] == ["FCRD_UP.LEGACY.100PCT_30S"]
    for a, b in zip(on_schedule, detected, strict=True):
        assert a.passed == b.passed
        if "100PCT" in a.rule_id:
            continue
        if a.measured is not None and b.measured is not None:
            assert a.measured == pytest.approx(b.measured, rel=0.05, abs=0.05)
