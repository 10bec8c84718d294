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
    k_red_check,
    linearity_check,
    performance_check,
    stability_check,
)
from analytics.rules import MissingParameterError, TestSignal, judge, judge_sine_set
from analytics.svkcsv import read_csv, write_csv
from analytics.testing.sequences import droop_target, fopdt_response, simulate_fcr_test
from analytics.timeseries import InsufficientDataError, Series
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import rule_tag

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
    # simulated without measurement dynamics: an external generator's record
    result = judge_sine_set(records, product, 1.0, signal=TestSignal.EXTERNAL)
    assert [f.period_s for f in result.fits] == [10.0, 25.0, 60.0, 150.0]
    assert [v.rule_id for v in result.verdicts][-3:] == [
        "FCRD_DOWN.REQ8.NYQUIST",
        "FCRD_DOWN.REQ9.PERFORMANCE",
        "FCRD_DOWN.REQ9.K_RED_DYN",
    ]
    assert all(v.passed for v in result.verdicts)
    assert result.errors == []


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


# ---------------------------------------------------------------- what the sine fit reads
def sine_record(
    period: float,
    n_periods: int,
    *,
    dt: float = 0.1,
    lead_s: float = 0.0,
    tail_s: float = 0.0,
    tau: float = 1.0,
    dead: float = 0.3,
    endpoint: bool = False,
    product: Product = Product.FCR_N,
) -> Series:
    """A sine of ``n_periods`` (exactly n·T/dt samples unless ``endpoint``), with steady
    logging at the centre frequency before (``lead_s``) and after it (``tail_s``)."""
    count = round(n_periods * period / dt) + (1 if endpoint else 0)
    lead, tail = round(lead_s / dt), round(tail_s / dt)
    t = np.round(np.arange(lead + count + tail) * dt, 9)
    centre = {Product.FCR_N: 50.0, Product.FCR_D_UP: 49.7, Product.FCR_D_DOWN: 50.3}[product]
    phase = np.clip(t - lead * dt, 0.0, n_periods * period)
    f = centre + 0.1 * np.sin(2 * np.pi * phase / period)
    target = droop_target(f, product, 1.0)
    power = 1.5 + fopdt_response(t, target, tau, dead)
    return Series(t=t, power_mw=power, applied_freq_hz=f, capacity_mw=np.full_like(t, 1.0))


def test_exactly_three_periods_at_10hz_count_as_three() -> None:
    # 3 x 300 s at 10 Hz = 9000 samples: samples x interval = 900 s, three periods
    s = sine_record(300.0, 3, dt=0.1, tau=1.0, dead=0.3)
    assert s.n == 9000
    fit = fit_period(s, 300.0, Product.FCR_N, 1.0)
    assert fit.periods_used == 2  # one settling period, two stationary
    want = chain(fit.omega, 1.0, 0.3)
    assert fit.gain == pytest.approx(abs(want), rel=0.01)


@pytest.mark.parametrize("n_periods", [3, 4, 7])
def test_n_period_files_fit_n_minus_one_up_to_five(n_periods: int) -> None:
    fit = fit_period(sine_record(40.0, n_periods), 40.0, Product.FCR_N, 1.0)
    assert fit.periods_used == min(5, n_periods - 1)
    assert fit.t_end == pytest.approx(40.0 * n_periods)


@pytest.mark.parametrize(
    ("period", "lead", "tail"),
    [(10.0, 0.0, 3.0), (10.0, 0.0, 60.0), (40.0, 25.0, 7.0), (150.0, 40.0, 3.0)],
)
def test_steady_logging_around_the_sine_gives_the_same_f(
    period: float, lead: float, tail: float
) -> None:
    bare = fit_period(sine_record(period, 4), period, Product.FCR_N, 1.0)
    padded = sine_record(period, 4, lead_s=lead, tail_s=tail)
    fit = fit_period(padded, period, Product.FCR_N, 1.0)
    assert fit.periods_used == bare.periods_used == 3
    assert fit.gain == pytest.approx(bare.gain, rel=5e-3)
    assert fit.phase_deg == pytest.approx(bare.phase_deg, abs=0.5)
    # the ends are found within ~1.6 % of a period (where the sine leaves the ±10 mHz band)
    assert fit.t_start == pytest.approx(lead + period, abs=period * 0.03)


def test_a_tail_keeps_req8_and_req9_as_without_it() -> None:
    records = {float(p): sine_record(p, 4, dt=0.1 if p < 100 else 0.5) for p in PERIODS}
    tailed = {float(p): sine_record(p, 4, dt=0.1 if p < 100 else 0.5, tail_s=60.0) for p in PERIODS}
    plain = judge_sine_set(records, Product.FCR_N, 1.0, signal=TestSignal.EXTERNAL)
    with_tail = judge_sine_set(tailed, Product.FCR_N, 1.0, signal=TestSignal.EXTERNAL)
    for a, b in zip(plain.verdicts, with_tail.verdicts, strict=True):
        assert a.rule_id == b.rule_id
        assert a.passed
        assert b.passed
    for a, b in zip(plain.verdicts[-3:], with_tail.verdicts[-3:], strict=True):
        assert b.measured == pytest.approx(a.measured, rel=1e-2)


def test_a_record_that_does_not_oscillate_is_named() -> None:
    t = np.arange(0.0, 200.0, 0.1)
    flat = Series(t=t, power_mw=np.zeros_like(t), applied_freq_hz=np.full_like(t, 50.0))
    with pytest.raises(InsufficientDataError, match="does not oscillate"):
        fit_period(flat, 40.0, Product.FCR_N, 1.0)


def test_req8_and_req9_are_never_dropped() -> None:
    records = {float(p): sine_record(p, 4) for p in (10, 25, 60)}
    records[90.0] = sine_record(90.0, 2)  # too short: one settling + one stationary period
    result = judge_sine_set(records, Product.FCR_N, 1.0)
    ids = dict(result.errors)
    assert set(ids) == {"FCRN.REQ8.NYQUIST", "FCRN.REQ9.PERFORMANCE", "FCRN.REQ9.K_RED_DYN"}
    assert all("period 90 s" in why and "over the 3 fitted periods" in why for why in ids.values())
    single = judge_sine_set({40.0: sine_record(40.0, 4)}, Product.FCR_N, 1.0)
    assert {r for r, _ in single.errors} == set(ids)
    assert "needs >= 2 fitted sine periods, got 1" in single.errors[0][1]


def test_unknown_test_signal_judges_both_readings_and_the_stricter_decides() -> None:
    records = {float(p): sine_record(p, 4, dt=0.1 if p < 100 else 0.5) for p in PERIODS}
    internal = judge_sine_set(records, Product.FCR_N, 1.0, signal=TestSignal.INTERNAL)
    external = judge_sine_set(records, Product.FCR_N, 1.0, signal=TestSignal.EXTERNAL)
    unknown = judge_sine_set(records, Product.FCR_N, 1.0)
    for i, e, u in zip(internal.verdicts[-3:], external.verdicts[-3:], unknown.verdicts[-3:],
                       strict=True):  # fmt: skip
        assert i.other_reading == e.other_reading == ""
        worse = min if u.comparison == ">=" else max
        assert u.measured == worse(i.measured, e.measured)
        assert u.other_reading
    # the measurement lag makes the loop less stable: Req 8 is decided by the internal reading
    assert unknown.verdicts[-3].measured == internal.verdicts[-3].measured
    assert unknown.verdicts[-3].other_reading.startswith("external generator")


@pytest.mark.parametrize(
    ("product", "k_target", "passed"),
    [(Product.FCR_N, 0.85, False), (Product.FCR_D_UP, 0.85, True),
     (Product.FCR_N, 0.95, True), (Product.FCR_D_DOWN, 0.7, False)],
)  # fmt: skip
def test_req9_k_red_dyn_is_checked_against_the_product_minimum(
    product: Product, k_target: float, passed: bool
) -> None:
    def fits(gain: float) -> list[PeriodFit]:
        return [PeriodFit(float(T), gain, 0.0, 0.0, 5) for T in PERIODS]

    k_low = k_red_check(fits(0.3), product).measured  # K needed scales with the gain
    gain = k_target * 0.3 / k_low
    v = k_red_check(fits(gain), product)
    assert v.measured == pytest.approx(k_target, rel=1e-6)
    assert v.threshold == (0.9 if product is Product.FCR_N else 0.75)
    assert v.passed is passed
    assert v.rule_id == f"{rule_tag(product)}.REQ9.K_RED_DYN"
