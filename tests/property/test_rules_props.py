"""Hypothesis properties of the rule layer and the SvK CSV format."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analytics.rules import judge
from analytics.svkcsv import read_csv, write_csv
from analytics.testing.sequences import simulate_fcr_test
from analytics.timeseries import Series
from analytics.verdicts import TestType, Verdict
from contract.enums import Product
from contract.products import MARKET_PRODUCTS

SIM = simulate_fcr_test(Product.FCR_D_UP, "ramp", dp_ss_mw=1.0, tau_s=1.2, dead_time_s=0.3)
BASE = Series(t=SIM.t, power_mw=SIM.power_mw, applied_freq_hz=SIM.applied_freq_hz)
UNITLESS = {"fraction", "s", "ratio"}


def measured(verdicts: list[Verdict]) -> dict[str, float]:
    return {v.rule_id.split(".", 1)[1]: v.measured for v in verdicts}


@settings(max_examples=15, deadline=None)
@given(k=st.floats(0.01, 100.0))
def test_scaling_power_and_capacity_scales_mw_and_energy_and_keeps_ratios(k: float) -> None:
    base = judge(BASE, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=1.0)
    scaled_series = Series(
        t=BASE.t, power_mw=k * BASE.power_mw, applied_freq_hz=BASE.applied_freq_hz
    )
    scaled = judge(scaled_series, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=k)
    for a, b in zip(base, scaled, strict=True):
        assert a.passed == b.passed
        factor = 1.0 if a.unit in UNITLESS else k
        assert np.isclose(b.measured, factor * a.measured, rtol=1e-7, atol=1e-9)
        assert np.isclose(b.threshold, factor * a.threshold, rtol=1e-12)


@settings(max_examples=15, deadline=None)
@given(shift=st.floats(-1e5, 1e5), offset=st.floats(-50.0, 50.0))
def test_time_shift_and_power_offset_change_nothing(shift: float, offset: float) -> None:
    base = measured(judge(BASE, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=1.0))
    moved = Series(
        t=BASE.t + shift, power_mw=BASE.power_mw + offset, applied_freq_hz=BASE.applied_freq_hz
    )
    out = measured(judge(moved, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=1.0))
    for key, value in base.items():
        assert np.isclose(out[key], value, rtol=1e-6, atol=1e-6), key


def test_down_is_the_mirror_of_up() -> None:
    assert BASE.applied_freq_hz is not None
    mirrored = Series(
        t=BASE.t, power_mw=-BASE.power_mw, applied_freq_hz=100.0 - BASE.applied_freq_hz
    )
    up = measured(judge(BASE, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=1.0))
    down = measured(judge(mirrored, Product.FCR_D_DOWN, TestType.RAMP, dp_ss_theo_mw=1.0))
    assert up.keys() == down.keys()
    for key in up:
        expected = -up[key] if key == "REQ1.SS" else up[key]  # the down bound is mirrored
        assert np.isclose(down[key], expected, atol=1e-9), key


@settings(max_examples=50, deadline=None)
@given(
    y=arrays(np.float64, 50, elements=st.floats(-1e3, 1e3)),
    a=st.floats(-10.0, 10.0),
    b=st.floats(-10.0, 10.0),
    window=st.tuples(st.floats(0.0, 4.9), st.floats(0.0, 4.9)),
)
def test_integral_is_linear(y: np.ndarray, a: float, b: float, window: tuple[float, float]) -> None:
    t = np.arange(50, dtype=np.float64) * 0.1
    s = Series(t=t, power_mw=y)
    t0, t1 = sorted(window)
    lhs = s.integral(a * y + b, t0, t1)
    rhs = a * s.integral(y, t0, t1) + b * (t1 - t0)
    assert np.isclose(lhs, rhs, rtol=1e-9, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    power=arrays(np.float64, st.integers(2, 40), elements=st.floats(-1e4, 1e4)),
    ms=st.sampled_from([10, 100, 200, 1000]),
    start_s=st.integers(0, 10**9),
    product=st.sampled_from(list(MARKET_PRODUCTS)),
)
def test_csv_round_trip(power: np.ndarray, ms: int, start_s: int, product: Product) -> None:
    t = np.arange(power.size, dtype=np.float64) * ms / 1000.0
    start = np.datetime64("2000-01-01T00:00:00", "ms") + np.timedelta64(start_s * 1000 + ms, "ms")
    series = replace(
        Series(t=t, power_mw=power, grid_freq_hz=np.full(power.size, 50.0)), start=start
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(
            series,
            Path(tmp),
            resource="P",
            product=product,
            test_type=TestType.OPERATION,
            area="SE3",
        )
        back = read_csv(path).series
    assert back.start == start
    np.testing.assert_allclose(back.t, t, atol=1e-9)
    np.testing.assert_allclose(back.power_mw, power, atol=5e-7)
