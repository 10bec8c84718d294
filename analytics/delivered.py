"""Delivered response per product: power - baseline - the other products' expected responses.

Facts ``shared/reference/svk-requirements.md`` §4.3 ([TR25 §3.8, §3.6]): delivered reserve =
actual power - baseline (the power without activation); simultaneous reserves are each
activated per their own specification and the total is their sum. So with several products
active at once, the response attributed to product P is the delivered total minus every
other product's expected response::

    delivered(P) = power - baseline - sum over Q != P of expected(Q)
    expected(Q)  = armed capacity of Q x Q's activation curve at the applied frequency
                   (an aFRR/mFRR order: its change against the baseline, as it stands)

The same definition as live compliance (``streams.steps.compliance``: ``total_power_mw -
baseline_mw`` less the other products' ``expected_mw`` of ``FleetState.products``), with the
curves of ``contract.products`` (no figure is repeated here: :func:`fraction` reads the
curve's own band). A :class:`~analytics.timeseries.Series` carries the other products'
expected responses as SvK's ``Activated_<Service>`` columns (TR25 Table 18: activated
reserve per product, MW), so an SvK CSV file written by the audit holds them beside
``CalcBaseline`` and reading it back gives the same delivered response. A column of the
judged product itself is never taken off (it is what the product should deliver).

Per site the same: ``SiteTelemetry.baseline_kw`` (null in events written before baselines:
read as 0) and the ``armed_*_kw`` / ``order_*_kw`` capacities (:data:`ARMED_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from analytics.timeseries import FloatArray, Series
from contract.enums import Product
from contract.products import MARKET_PRODUCTS, curve_for, svk_service

#: SvK's header prefix of the activated reserve per product (TR25 Table 18).
ACTIVATED_PREFIX = "Activated_"

#: SiteTelemetry field holding each product's armed capacity (FCR, FFR) or order change in
#: force (aFRR, mFRR), kW at the site (SiteTelemetry.avsc, schema v2).
ARMED_FIELDS: Mapping[Product, str] = MappingProxyType(
    {
        Product.FCR_N: "armed_fcr_n_kw",
        Product.FCR_D_UP: "armed_fcr_d_up_kw",
        Product.FCR_D_DOWN: "armed_fcr_d_down_kw",
        Product.FFR: "armed_ffr_kw",
        Product.AFRR: "order_afrr_kw",
        Product.MFRR: "order_mfrr_kw",
    }
)
if set(ARMED_FIELDS) != set(MARKET_PRODUCTS):  # pragma: no cover  # a new product needs a field
    raise RuntimeError("ARMED_FIELDS must name a SiteTelemetry field for every market product")


def activated_column(product: Product) -> str:
    """``Activated_<Service>``: the SvK column of ``product``'s activated reserve (MW)."""
    return ACTIVATED_PREFIX + svk_service(product)


_BY_COLUMN = {activated_column(p): p for p in MARKET_PRODUCTS}


def column_product(column: str) -> Product | None:
    """The product of an ``Activated_<Service>`` column, None for any other column."""
    return _BY_COLUMN.get(column)


def fraction(product: Product, frequency_hz: npt.ArrayLike) -> FloatArray:
    """The product's activation in [-1, 1] per sample (> 0 = discharge), vectorised.

    :func:`contract.products.activation_fraction` with the curve's default band, sample by
    sample (no dead band: the curves carry none; FFR at its default option). aFRR/mFRR
    follow a TSO signal, not the frequency: their "armed" value is the order change itself,
    so the fraction is 1.
    """
    f = np.asarray(frequency_hz, dtype=np.float64)
    curve = curve_for(product)
    if curve.f_start_hz is None or curve.f_full_hz is None:
        return np.ones_like(f)
    start, full = float(curve.f_start_hz), float(curve.f_full_hz)
    sign = 1.0 if full <= start else -1.0
    if curve.stepwise:
        reached = f <= full if sign > 0 else f >= full
        return np.where(reached, sign, 0.0)
    x = (start - f) / (start - full)
    low = -1.0 if curve.symmetric else 0.0
    return np.asarray(np.clip(x, low, 1.0) * sign, dtype=np.float64)


def expected(product: Product, armed: npt.ArrayLike, frequency_hz: npt.ArrayLike) -> FloatArray:
    """Expected response of ``armed`` capacity (any unit: the result has it) per sample.

    0 wherever nothing is armed, whatever the frequency there (a bucket without a
    frequency reading is NaN and only matters where the product is armed).
    """
    cap = np.asarray(armed, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        value = cap * fraction(product, frequency_hz)
    return np.asarray(np.where(cap == 0.0, 0.0, value), dtype=np.float64)


def others_mw(series: Series, product: Product) -> FloatArray | None:
    """The sum of the other products' ``Activated_*`` columns, None when there is none."""
    total: FloatArray | None = None
    for column, values in series.extra.items():
        other = column_product(column)
        if other is None or other is product:
            continue
        total = values.copy() if total is None else total + values
    return total


def delivered_mw(series: Series, product: Product) -> FloatArray:
    """Response attributed to ``product``: power - baseline - the others' expected (module doc)."""
    response = series.response_mw()
    others = others_mw(series, product)
    return response if others is None else response - others


def other_products(series: Series, product: Product) -> list[Product]:
    """The products whose expected response :func:`delivered_mw` takes off, in symbol order."""
    found = {column_product(c) for c in series.extra} - {None, product}
    return [p for p in MARKET_PRODUCTS if p in found]


def method_lines() -> list[str]:
    """The report's Method lines for the delivered response."""
    return [
        "Delivered response = battery power - baseline (facts §4.3 [TR25 §3.8]); the baseline "
        "is what the sites would do with no reserve and no order (SiteTelemetry.baseline_kw, "
        "summed over sites with the same hold as power; written as CalcBaseline).",
        "Several products at once (facts §4.3 [TR25 §3.6]: each follows its own specification, "
        "the total is their sum): the response judged for a product is the delivered total "
        "minus every other product's expected response, i.e. the sites' armed capacity of it "
        "(SiteTelemetry armed_*_kw, summed like power) times its activation curve "
        "(contract.products) at the fleet's mean frequency, and an aFRR/mFRR order's change "
        "in force (order_*_kw); written as Activated_<Service> columns. Live compliance uses "
        "the same definition.",
        "Telemetry written before baselines (SiteTelemetry v1: no baseline_kw, nothing armed "
        "in it) reads as baseline 0 and nothing else armed, as SiteTelemetry.avsc says; where "
        "no site reported a baseline the activation's own baseline_mw is used if it states "
        "one (each activation says which).",
    ]


__all__ = [
    "ACTIVATED_PREFIX",
    "ARMED_FIELDS",
    "activated_column",
    "column_product",
    "delivered_mw",
    "expected",
    "fraction",
    "method_lines",
    "other_products",
    "others_mw",
]
