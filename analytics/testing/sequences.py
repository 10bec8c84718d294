"""Synthetic prequalification test signals (TR25 Tables 3/4, §2.3) and a simple response model.

Used to simulate tests for the audit, the SvK CSV export and benchmarks: the applied
frequency of the FCR-N step and FCR-D ramp sequences, a sine test, the droop target of each
FCR product, and a first-order-plus-dead-time (FOPDT) response of a dispatch chain.
"""

from __future__ import annotations

import numpy as np

from analytics.timeseries import FloatArray, Series
from analytics.tr25 import FCRD_RAMP_END_S, FCRD_UP_RAMPS, FCRN_STEP_END_S, FCRN_STEPS
from contract.enums import Product
from contract.products import is_fcr_d


def fcrd_ramp_frequency(t: FloatArray, product: Product) -> FloatArray:
    """Applied frequency of the FCR-D dynamic ramp test; down mirrors up about 50 Hz."""
    if not is_fcr_d(product):
        raise ValueError(f"FCR-D ramp sequence needs FCR_D_UP or FCR_D_DOWN, got {product}")
    xs, ys = [0.0], [49.9]
    for start, target, speed in FCRD_UP_RAMPS:
        xs += [start, start + abs(target - ys[-1]) / speed]
        ys += [ys[-1], target]
    f_up = np.interp(t, xs, ys)
    return f_up if product is Product.FCR_D_UP else 100.0 - f_up


def fcrn_step_frequency(t: FloatArray) -> FloatArray:
    """Applied frequency of the FCR-N step test (piecewise constant)."""
    starts = np.array([s for s, _ in FCRN_STEPS])
    levels = np.array([f for _, f in FCRN_STEPS])
    return levels[np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(levels) - 1)]


def sine_frequency(
    t: FloatArray, period_s: float, centre_hz: float, amp_hz: float = 0.1
) -> FloatArray:
    """Sine test frequency (TR25 §2.3: ±100 mHz around the product's centre)."""
    return centre_hz + amp_hz * np.sin(2 * np.pi * t / period_s)


def droop_target(f: FloatArray, product: Product, dp_ss_mw: float) -> FloatArray:
    """Steady-state response of a linear FCR droop saturating at 100 % (MW, + = injection)."""
    if product is Product.FCR_N:
        return dp_ss_mw * np.clip((50.0 - f) / 0.1, -1.0, 1.0)
    if product is Product.FCR_D_UP:
        return dp_ss_mw * np.clip((49.9 - f) / 0.4, 0.0, 1.0)
    if product is Product.FCR_D_DOWN:
        return -dp_ss_mw * np.clip((f - 50.1) / 0.4, 0.0, 1.0)
    raise ValueError(f"no droop for {product}")


def fopdt_response(
    t: FloatArray, target: FloatArray, tau_s: float, dead_time_s: float, gain: float = 1.0
) -> FloatArray:
    """Response of gain·e^(-Ls)/(τs+1) to ``target`` (linear interpolation between samples).

    Discretised exactly for a input that is linear between samples (first-order hold).
    """
    u = gain * np.interp(t - dead_time_s, t, target, left=float(target[0]))
    y = np.empty_like(u)
    y[0] = u[0]
    if tau_s <= 0:
        return u
    dt = np.diff(t)
    a = np.exp(-dt / tau_s)
    # first-order hold: y' = (u - y)/τ with u linear on each interval
    b = 1 - tau_s / dt * (1 - a)
    for k in range(1, t.shape[0]):
        y[k] = a[k - 1] * y[k - 1] + (1 - a[k - 1] - b[k - 1]) * u[k - 1] + b[k - 1] * u[k]
    return y


def simulate_fcr_test(
    product: Product,
    kind: str,
    *,
    dp_ss_mw: float,
    tau_s: float,
    dead_time_s: float = 0.0,
    dt_s: float = 0.1,
    baseline_mw: float = 0.0,
    period_s: float = 40.0,
    n_periods: int = 5,
) -> Series:
    """A simulated FCR test (``kind``: "ramp", "step" or "sine") through a FOPDT chain."""
    if kind == "ramp":
        end = FCRD_RAMP_END_S
    elif kind == "step":
        end = FCRN_STEP_END_S
    elif kind == "sine":
        end = period_s * n_periods
    else:
        raise ValueError(f"unknown test kind {kind!r}: ramp, step or sine")
    t = np.round(np.arange(0.0, end + dt_s / 2, dt_s), 9)
    if kind == "ramp":
        f = fcrd_ramp_frequency(t, product)
    elif kind == "step":
        f = fcrn_step_frequency(t)
    else:
        centre = {Product.FCR_N: 50.0, Product.FCR_D_UP: 49.7, Product.FCR_D_DOWN: 50.3}[product]
        f = sine_frequency(t, period_s, centre)
    target = droop_target(f, product, dp_ss_mw)
    power = baseline_mw + fopdt_response(t, target, tau_s, dead_time_s)
    return Series(
        t=t,
        power_mw=power,
        grid_freq_hz=f,
        applied_freq_hz=f,
        baseline_mw=np.full_like(t, baseline_mw),
        capacity_mw=np.full_like(t, dp_ss_mw),
    )
