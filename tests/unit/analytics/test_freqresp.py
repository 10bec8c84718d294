"""Frequency response: recover gain, phase and dead time of a known simulated chain."""

from __future__ import annotations

import cmath
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analytics.freqresp import (
    PeriodFit,
    fit_fopdt_step,
    fit_gain_lag,
    fit_period,
    fit_sine,
    grid_model,
    linearity_check,
    performance_check,
    stability_check,
)
from analytics.rules import MissingParameterError, judge, judge_sine_set
from analytics.svkcsv import read_csv, write_csv
from analytics.testing.sequences import fopdt_response, simulate_fcr_test
from analytics.timeseries import InsufficientDataError
from analytics.verdicts import Product, TestType

PERIODS = (10, 15, 25, 40, 50, 60, 70, 90, 150, 300)


def chain(w: float, tau: float, dead: float, gain: float = 1.0) -> complex:
    return gain * cmath.exp(-1j * w * dead) / (1 + 1j * w * tau)


def sine_fits(product: Product, tau: float, dead: float, dp: float = 2.0) -> list[PeriodFit]:
    fits = []
    for period in PERIODS:
        s = simulate_fcr_test(
            product,
            "sine",
            dp_ss_mw=dp,
            tau_s=tau,
            dead_time_s=dead,
            period_s=period,
            n_periods=3 if period >= 150 else 4,
            dt_s=0.1 if period < 100 else 0.5,
            baseline_mw=1.5,
        )
        fits.append(fit_period(s, period, product, dp))
    return fits


@pytest.mark.parametrize("product", [Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN])
def test_sine_fit_recovers_the_chain(product: Product) -> None:
    tau, dead = 1.5, 0.8
    for fit in sine_fits(product, tau, dead):
        want = chain(fit.omega, tau, dead)
        assert fit.gain == pytest.approx(abs(want), rel=0.01)
        assert fit.phase_deg == pytest.approx(math.degrees(cmath.phase(want)), abs=1.0)
        assert linearity_check(fit, product).passed


def test_fit_sine_removes_offset_and_trend() -> None:
    t = np.arange(0.0, 200.0, 0.1)
    y = 3.0 + 0.01 * t + 0.7 * np.sin(2 * np.pi * t / 40.0 + 0.4)
    fit = fit_sine(t, y, 40.0)
    assert fit.amplitude == pytest.approx(0.7)
    assert fit.phase_rad == pytest.approx(0.4)
    assert fit.nrmse == pytest.approx(0.0, abs=1e-9)


def test_internal_signal_is_corrected_by_the_measurement_lag() -> None:
    s = simulate_fcr_test(
        Product.FCR_N, "sine", dp_ss_mw=1.0, tau_s=0.0, period_s=25.0, n_periods=4
    )
    plain = fit_period(s, 25.0, Product.FCR_N, 1.0)
    with_fme = fit_period(s, 25.0, Product.FCR_N, 1.0, t_fme_s=1.0)
    assert with_fme.f == pytest.approx(plain.f / (1 + 1j * plain.omega * 1.0))


def test_fast_chain_passes_stability_and_performance() -> None:
    fits = sine_fits(Product.FCR_D_UP, 1.0, 0.3)
    assert stability_check(fits, Product.FCR_D_UP).passed
    perf = performance_check(fits, Product.FCR_D_UP)
    assert perf.passed
    assert "K_red,dyn needed 1.000" in perf.detail


def test_slow_chain_fails_stability() -> None:
    fits = sine_fits(Product.FCR_N, 10.0, 3.0)
    v = stability_check(fits, Product.FCR_N)
    assert not v.passed
    assert v.threshold == pytest.approx(0.43 * 0.95)


def test_stability_margin_and_sign_are_explicit() -> None:
    # A chain whose closest approach to -1 lies between the 95 % and 75 % radii.
    fits = [
        PeriodFit(float(p), abs(z), math.degrees(cmath.phase(z)), 0.0, 5)
        for p, z in ((T, chain(2 * math.pi / T, 3.0, 0.3)) for T in PERIODS)
    ]
    strict = stability_check(fits, Product.FCR_N)
    relaxed = stability_check(fits, Product.FCR_N, margin=0.75)
    assert strict.measured == relaxed.measured
    assert 0.43 * 0.75 <= strict.measured < 0.43 * 0.95
    assert (strict.passed, relaxed.passed) == (False, True)
    # the other sign convention (G0 = -F·G) puts the low-frequency curve at -26: left of -1
    assert stability_check(fits, Product.FCR_N, sign=-1).measured < 0


def test_performance_reduction_factor_for_a_weak_response() -> None:
    fits = [PeriodFit(float(T), 0.3, 0.0, 0.0, 5) for T in PERIODS]  # 30 % of the droop
    v = performance_check(fits, Product.FCR_N)
    assert not v.passed
    k = float(v.detail.split("needed ")[1])
    assert 0.0 < k < 1.0


def test_grid_model_matches_table7() -> None:
    g = grid_model(Product.FCR_N, "stability")
    assert g.h_s == pytest.approx(5.2174, abs=1e-4)
    dc = g(np.array([1e-9]))[0]
    assert dc.real == pytest.approx(600 / 0.1 * 50 / 23_000 / (0.01 * 50), rel=1e-6)
    with pytest.raises(ValueError, match="purpose"):
        grid_model(Product.FCR_N, "both")


def test_too_short_a_sine_record_is_rejected() -> None:
    s = simulate_fcr_test(
        Product.FCR_N, "sine", dp_ss_mw=1.0, tau_s=1.0, period_s=60.0, n_periods=2
    )
    with pytest.raises(InsufficientDataError, match="needs >= 3 periods"):
        fit_period(s, 60.0, Product.FCR_N, 1.0)


@pytest.mark.parametrize(
    ("gain", "tau", "dead"), [(0.8, 2.0, 0.7), (1.2, 0.5, 2.3), (-0.6, 5.0, 0.0)]
)
def test_fopdt_step_fit_recovers_parameters(gain: float, tau: float, dead: float) -> None:
    t = np.arange(0.0, 80.0, 0.1)
    x = np.clip(t - 20.0 - dead, 0.0, None)
    rng = np.random.default_rng(7)
    y = 3.0 + 2.0 * gain * (1 - np.exp(-x / tau)) + rng.normal(0.0, 0.002, t.size)
    fit = fit_fopdt_step(t, y, 20.0, du=2.0)
    assert fit.gain == pytest.approx(gain, rel=0.01)
    assert fit.tau_s == pytest.approx(tau, rel=0.03)
    assert fit.dead_time_s == pytest.approx(dead, abs=0.05)


def test_fopdt_fit_of_the_simulated_chain() -> None:
    t = np.arange(0.0, 60.0, 0.05)
    u = np.where(t >= 10.0, 1.0, 0.0)
    y = fopdt_response(t, u, 3.0, 1.2, gain=0.9)
    fit = fit_fopdt_step(t, y, 10.0)
    # the simulated input ramps over one sample (first-order hold): dead time within dt
    assert fit.gain == pytest.approx(0.9, rel=0.01)
    assert fit.tau_s == pytest.approx(3.0, rel=0.02)
    assert fit.dead_time_s == pytest.approx(1.2, abs=0.05)


def test_fopdt_needs_a_response() -> None:
    t = np.arange(0.0, 30.0, 0.1)
    with pytest.raises(InsufficientDataError, match="no response"):
        fit_fopdt_step(t, np.zeros_like(t), 10.0)


def test_sine_files_judged_per_period_and_as_a_set(tmp_path: Path) -> None:
    product = Product.FCR_D_DOWN
    records = {}
    for period in (10, 25, 60, 150):
        s = simulate_fcr_test(
            product, "sine", dp_ss_mw=1.0, tau_s=1.0, dead_time_s=0.2, period_s=period, n_periods=3
        )
        s = replace(s, start=np.datetime64("2025-05-01T08:00:00"))
        path = write_csv(
            s,
            tmp_path,
            resource="Bess",
            product=product,
            test_type=TestType.SINE,
            area="SE3",
            period_s=period,
        )
        rec = read_csv(path)
        assert rec.name.period_s == period
        (lin, polarity) = judge(
            rec.series, rec.name.product, rec.name.test_type, period_s=rec.name.period_s
        )
        assert lin.rule_id == "FCRD_DOWN.REQ10.LINEARITY"
        assert lin.passed
        assert polarity.passed
        records[float(period)] = rec.series
    fits, verdicts = judge_sine_set(records, product, 1.0)
    assert [f.period_s for f in fits] == [10.0, 25.0, 60.0, 150.0]
    assert [v.rule_id for v in verdicts][-2:] == [
        "FCRD_DOWN.REQ8.NYQUIST",
        "FCRD_DOWN.REQ9.PERFORMANCE",
    ]
    assert all(v.passed for v in verdicts)


def test_sine_rule_needs_the_period() -> None:
    s = simulate_fcr_test(
        Product.FCR_N, "sine", dp_ss_mw=1.0, tau_s=1.0, period_s=25.0, n_periods=3
    )
    with pytest.raises(MissingParameterError, match="period_s"):
        judge(s, Product.FCR_N, TestType.SINE)


@pytest.mark.parametrize(("gain", "lag"), [(1.0, 0.0), (0.8, 7.0), (-1.0, 3.0)])
def test_gain_and_lag_of_a_delayed_response(gain: float, lag: float) -> None:
    t = np.arange(0.0, 600.0, 1.0)
    expected = np.sin(2 * np.pi * t / 97.0) + 0.5 * np.sin(2 * np.pi * t / 31.0)
    response = 2.0 + gain * np.interp(t - lag, t, expected, left=float(expected[0]))
    fit = fit_gain_lag(t, expected, response, max_lag_s=20.0)
    assert fit.gain == pytest.approx(gain, abs=1e-6)
    assert fit.lag_s == pytest.approx(lag)
    assert fit.r2 == pytest.approx(1.0, abs=1e-6)
