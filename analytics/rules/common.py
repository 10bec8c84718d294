"""Response polarity for every product (in-house diagnostic, per site and per fleet).

Polarity (``FLOWERHUB-1``, usable per site and per fleet): the expected response follows
the product's activation curve (C = ΔP_ss,theo for FCR) - FCR-N C·clip((50 - f)/0.1, -1, 1);
FCR-D up C·clip((49.9 - f)/0.4, 0, 1); FCR-D down -C·clip((f - 50.1)/0.4, 0, 1); FFR C while
f <= the activation level; aFRR/mFRR the requested activation. The measured value is the
least-squares gain of the response on the expected response, ``∫R·E dt / ∫E² dt`` with
R = power - baseline (without a baseline column: the slope of a fit R = gain·E + const):
about 1 for a correct response, 0 for none and -1 for a mirrored one. It fails below
``-polarity_tolerance`` (a missing response is "late or no response", judged by the timing
rules, not a polarity fault). No sample mask is involved, so rounding of the frequency
(e.g. through an SvK CSV export) cannot flip samples in or out.
"""

from __future__ import annotations

import numpy as np

from analytics.rules.base import (
    INHOUSE,
    Context,
    Measurement,
    MissingParameterError,
    Rule,
)
from analytics.rules.frr import order
from analytics.timeseries import FloatArray, MissingSignalError
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import (
    FCRD_BAND_HZ,
    FCRD_DOWN_START_HZ,
    FCRD_UP_START_HZ,
    FCRN_BAND_HZ,
    MARKET_PRODUCTS,
    NOMINAL_HZ,
    rule_tag,
)


def expected_response(ctx: Context) -> FloatArray:
    """The response the product's activation curve asks for, in MW, per sample."""
    product, series = ctx.product, ctx.series
    if product in (Product.AFRR, Product.MFRR):
        if series.requested_mw is not None and ctx.params.requested_mw is None:
            return series.requested_mw
        od = order(ctx)
        return np.where(series.t >= od.t_start, od.target_mw, 0.0)
    needed_by = f"{product.value} expected response"
    cap = ctx.capacity(needed_by) if product is Product.FFR else ctx.dp_ss(needed_by)
    f = series.frequency(f"{product.value} expected response")
    if product is Product.FCR_N:
        return cap * np.clip((NOMINAL_HZ - f) / FCRN_BAND_HZ, -1.0, 1.0)
    if product is Product.FCR_D_UP:
        return cap * np.clip((FCRD_UP_START_HZ - f) / FCRD_BAND_HZ, 0.0, 1.0)
    if product is Product.FCR_D_DOWN:
        return -cap * np.clip((f - FCRD_DOWN_START_HZ) / FCRD_BAND_HZ, 0.0, 1.0)
    level = ctx.params.ffr_activation_hz
    if level is None:
        raise MissingParameterError("ffr_activation_hz", "FFR expected response")
    return np.where(f <= level, cap, 0.0)


def has_activation(ctx: Context) -> str | None:
    """Polarity applies only when the window asks for a response."""
    if np.any(expected_response(ctx) != 0):
        return None
    return "an activation (the expected response is zero throughout)"


def polarity(ctx: Context) -> Measurement:
    s = ctx.series
    exp = expected_response(ctx)
    if not np.any(exp != 0):
        raise MissingSignalError("an activation", f"{ctx.product.value} polarity")
    r = ctx.response()
    if s.baseline_mw is not None:
        value = float(np.trapezoid(r * exp, s.t) / np.trapezoid(exp * exp, s.t))
        how = "response = power - baseline"
    else:
        design = np.column_stack([exp, np.ones_like(exp)])
        coef, *_ = np.linalg.lstsq(design, r, rcond=None)
        value, how = float(coef[0]), f"fitted baseline {coef[1]:.4f} MW"
    return Measurement(
        value,
        -ctx.params.polarity_tolerance,
        ">=",
        f"least-squares gain of the response on the expected one ({how}); "
        "1 = as expected, 0 = none, -1 = mirrored",
    )


def _polarity_rule(product: Product) -> Rule:
    return Rule(
        rule_id=f"{rule_tag(product)}.POLARITY",
        product=product,
        test_types=frozenset(TestType),
        version=INHOUSE,
        requirement="response has the sign the activation asks for",
        reference="FlowerHub diagnostic (TR25 §3.4 activation curves)",
        unit="fraction",
        evaluate=polarity,
        precondition=has_activation,
    )


RULES: tuple[Rule, ...] = tuple(_polarity_rule(p) for p in MARKET_PRODUCTS)
