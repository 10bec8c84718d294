"""Simulated logs of homes that hold several reserves at once on top of their own baseline.

Every site keeps covering its household load (self-consumption: its baseline, load - PV
within its limits, moving with the load), holds the same reserves as the others (FCR-N,
FCR-D up/down, FFR capacity in kW) and follows the fleet's orders (aFRR/mFRR changes
against the baseline), as the edge bridge does since issue 14::

    battery power = baseline + sum over armed products of capacity x droop(f) + orders

with each OEM's dispatch chain (first order plus dead time, :data:`~analytics.testing.
scenario.OEMS`) on the reserve part. The droop is :func:`analytics.testing.sequences.
droop_target` (its own formulas, not the audit's). Telemetry carries ``baseline_kw``,
``armed_*_kw`` and ``order_*_kw`` (SiteTelemetry v2) at 1 Hz, written as a real archive by
:class:`~analytics.testing.scenario.LogBuilder`. ``mirrored`` names a site whose reserve
response has the wrong sign; ``baselines=False`` leaves ``baseline_kw`` null (a bridge that
does not compute one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.testing.scenario import OEMS, START_MS, LogBuilder, activation
from analytics.testing.sequences import droop_target, fopdt_response
from analytics.testing.synthetic import site_id, telemetry_record
from analytics.timeseries import FloatArray
from contract.enums import Product

#: SiteTelemetry field per product (the contract's names, schema v2).
FIELDS = {
    Product.FCR_N: "armed_fcr_n_kw",
    Product.FCR_D_UP: "armed_fcr_d_up_kw",
    Product.FCR_D_DOWN: "armed_fcr_d_down_kw",
    Product.FFR: "armed_ffr_kw",
    Product.AFRR: "order_afrr_kw",
    Product.MFRR: "order_mfrr_kw",
}
MAX_KW = 10.0  # battery limits of every simulated home, kW
PV_KW = 0.6


@dataclass(frozen=True)
class Order:
    """An order change per site (kW, + = more discharge) of ``product`` in [start_s, end_s)."""

    product: Product
    start_s: float
    end_s: float
    kw: float


@dataclass(frozen=True)
class Logged:
    """A MarketActivation the log holds (times in seconds from the log's start)."""

    activation_id: str
    product: Product
    kind: str
    start_s: float
    end_s: float
    requested_mw: float
    test_name: str | None = None


@dataclass(frozen=True)
class StackedScenario:
    root: Path
    sites: Mapping[str, str]  # site -> oem
    t_s: FloatArray
    frequency_hz: FloatArray
    baseline_kw: Mapping[str, FloatArray]
    reserve_kw: Mapping[str, Mapping[Product, FloatArray]]  # per site, per product (FOPDT)
    activations: tuple[Logged, ...] = field(default=())

    def us(self, seconds: float) -> int:
        return int((START_MS + seconds * 1000) * 1000)


def household_load_kw(t: FloatArray, index: int) -> FloatArray:
    """A home's load: 1.2 kW +- 0.8 kW over a 97 s cycle (its own phase) and a 3 kW kettle
    for 40 s at one home in four: enough to move the baseline while the reserves are on."""
    load = 1.2 + 0.8 * np.sin(2 * np.pi * t / 97.0 + index)
    if index % 4 == 1:
        load = load + np.where((t >= 40 + 7 * index) & (t < 80 + 7 * index), 3.0, 0.0)
    return np.asarray(load, dtype=np.float64)


def stacked_log(
    root: Path,
    *,
    frequency_hz: FloatArray,
    armed_kw: Mapping[Product, float],
    orders: Sequence[Order] = (),
    activations: Sequence[Logged] = (),
    sites: int = 12,
    mirrored: str | None = None,
    baselines: bool = True,
    seed: int = 21,
) -> StackedScenario:
    """Write the log (one sample per site and second of ``frequency_hz``); see module doc."""
    b = LogBuilder(seed=seed)
    t = np.arange(frequency_hz.size, dtype=np.float64)
    oems, base_out, reserve_out = {}, {}, {}
    for i in range(sites):
        site, oem = site_id(i), list(OEMS)[i % len(OEMS)]
        oems[site] = oem
        model, dead, tau = OEMS[oem]
        load = household_load_kw(t, i)
        baseline = np.clip(load - PV_KW, -MAX_KW, MAX_KW)
        sign = -1.0 if site == mirrored else 1.0
        parts: dict[Product, FloatArray] = {}
        capacity = {p: np.full(t.shape, kw) for p, kw in armed_kw.items()}
        for p, kw in armed_kw.items():
            parts[p] = sign * fopdt_response(t, _droop(frequency_hz, p, kw), tau, dead)
        for od in orders:
            on = np.where((t >= od.start_s) & (t < od.end_s), od.kw, 0.0)
            capacity[od.product] = capacity.get(od.product, np.zeros(t.shape)) + on
            parts[od.product] = parts.get(od.product, np.zeros(t.shape)) + sign * fopdt_response(
                t, on, tau, dead
            )
        power = np.clip(baseline + sum(parts.values(), np.zeros(t.shape)), -MAX_KW, MAX_KW)
        base_out[site], reserve_out[site] = baseline, parts
        first = next((p for p in FIELDS if p in armed_kw and p in _FREQUENCY), None)
        for k in range(t.size):
            record = telemetry_record(b.rng, site, 0, k, None)
            record.update(
                event_time=int((START_MS + k * 1000 + 7 * i) * 1000),
                oem=oem,
                model=model,
                battery_power_kw=round(float(power[k]), 3),
                frequency_hz=round(float(frequency_hz[k]), 4),
                load_kw=round(float(load[k]), 3),
                pv_power_kw=PV_KW,
                grid_power_kw=round(float(power[k] + PV_KW - load[k]), 3),
                soc_pct=50.0,
                headroom_up_kw=2.0,
                headroom_down_kw=2.0,
                setpoint_kw=None,
                mode="REMOTE",
                reserve_armed="NONE" if first is None else first.value,
                baseline_kw=round(float(baseline[k]), 3) if baselines else None,
                **{FIELDS[p]: round(float(c[k]), 3) for p, c in capacity.items()},
            )
            b.add("SiteTelemetry", site, record)
    for a in activations:
        activation(
            b,
            activation_id=a.activation_id,
            product=a.product,
            kind=a.kind,
            start_us=int((START_MS + a.start_s * 1000) * 1000),
            end_us=int((START_MS + a.end_s * 1000) * 1000),
            requested_mw=a.requested_mw,
            test_name=a.test_name,
        )
    b.write(root)
    return StackedScenario(root, oems, t, frequency_hz, base_out, reserve_out, tuple(activations))


_FREQUENCY = (Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN, Product.FFR)
FFR_LEVEL_HZ = 49.7  # the simulated homes' FFR option


def _droop(f: FloatArray, product: Product, kw: float) -> FloatArray:
    if product is Product.FFR:
        return np.where(f <= FFR_LEVEL_HZ, kw, 0.0)
    if product not in _FREQUENCY:
        raise ValueError(f"{product.value} is an order, not an armed reserve: use Order")
    return droop_target(f, product, kw)
