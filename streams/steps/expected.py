"""Per-product figures of a fleet window, column-wise (pure: numpy, no Faust/Kafka).

``product_states(armed, orders, frequency_hz, mean_frequency_hz)`` gives FleetState's
``products``: for each armed product (FCR-N, FCR-D up, FCR-D down, FFR) with capacity at some
site, the capacity summed (``armed_mw``) and the response it asks for now
(``expected_mw``): per site its capacity times the product's activation at the site's own
frequency (``contract.products``' curve with the product's default band: telemetry carries
a site's armed capacity, not the band it was armed with), summed; a site reporting no
frequency is taken at the window's mean frequency, and contributes nothing when no site
reports one. For the orders (aFRR, mFRR) in force at some site: the changes' magnitudes
summed (``armed_mw``) and the signed changes summed (``expected_mw``). MW, ``math.fsum``.

``activation_fractions(curve, frequency_hz)`` is ``contract.products.curve_fraction`` over an
array (no dead band), checked against it by tests/property/test_streams_expected.py.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from contract.enums import Product
from contract.products import ProductCurve, curve_for
from contract.records import ProductState

#: column order of the armed capacities (``armed``) and of the orders (``orders``)
ARMED_COLUMNS = (Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN, Product.FFR)
ORDER_COLUMNS = (Product.AFRR, Product.MFRR)
#: the SiteTelemetry fields of those columns, in the same order
ARMED_FIELDS = ("armed_fcr_n_kw", "armed_fcr_d_up_kw", "armed_fcr_d_down_kw", "armed_ffr_kw")
ORDER_FIELDS = ("order_afrr_kw", "order_mfrr_kw")
#: the order of a sample's ``stack``
STACK_FIELDS = ARMED_FIELDS + ORDER_FIELDS
_CURVES = tuple(curve_for(p) for p in ARMED_COLUMNS)

F64 = npt.NDArray[np.float64]


def activation_fractions(curve: ProductCurve, frequency_hz: F64) -> F64:
    """The curve's activation in [-1, 1] at each frequency (> 0 = discharge; NaN in, 0 out)."""
    start, full = curve.f_start_hz, curve.f_full_hz
    if start is None or full is None:
        raise ValueError(f"{curve.product} is not activated by frequency")
    sign = 1.0 if full <= start else -1.0
    known = np.isfinite(frequency_hz)
    f = np.where(known, frequency_hz, start)
    if curve.stepwise:
        reached = f <= full if sign > 0 else f >= full
        out: F64 = np.where(known & reached, sign, 0.0)
        return out
    x = (start - f) / (start - full)
    low = -1.0 if curve.symmetric else 0.0
    out = np.clip(x, low, 1.0) * sign
    out[~known] = 0.0
    return out


def _mw(values: F64) -> float:
    return math.fsum(values.tolist()) / 1000.0


def product_states(
    armed: F64 | None, orders: F64 | None, frequency_hz: F64, mean_frequency_hz: float | None
) -> tuple[ProductState, ...]:
    """FleetState ``products`` of a window's sites (see the module doc): ``armed`` is
    (sites x ``ARMED_COLUMNS``) kW, ``orders`` (sites x ``ORDER_COLUMNS``) kW (None: no
    site holds any), ``frequency_hz`` per site (NaN: none reported)."""
    out: list[ProductState] = []
    if armed is None or orders is None or not len(armed):
        return ()
    active: list[int] = np.flatnonzero((armed > 0).any(axis=0)).tolist()
    if active:
        freq = frequency_hz
        if mean_frequency_hz is not None:
            freq = np.where(np.isnan(freq), mean_frequency_hz, freq)
        for k in active:
            capacity = armed[:, k]
            response = capacity * activation_fractions(_CURVES[k], freq)
            out.append(ProductState(ARMED_COLUMNS[k], _mw(capacity), _mw(response)))
    if len(orders):
        ordered: list[int] = np.flatnonzero((orders != 0).any(axis=0)).tolist()
        for k in ordered:
            change = orders[:, k]
            out.append(ProductState(ORDER_COLUMNS[k], _mw(np.abs(change)), _mw(change)))
    return tuple(out)
