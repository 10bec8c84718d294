"""Rules for every product: response polarity (in-house) and LER endurance (TR25 §3.5).

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

LER endurance (``TR-2025-03-28``): the stored energy E(t) comes from SOC·E_max (SOC signal)
or from ``initial_soc_pct`` minus ∫P dt (energy and power). With eqs 27-28 at zero setpoint
and inflow, L_up = (E - E_min)/C·60 and L_down = (E_max - E)/C·60 minutes; the minimum over
the series must be >= 60 min in both directions for FCR-N, >= 20 min up for FCR-D up and
>= 20 min down for FCR-D down (TR25 §3.5, SvK Q&A LER).
"""

from __future__ import annotations

import numpy as np

from analytics.rules.base import (
    INHOUSE,
    TR25,
    Context,
    Evaluator,
    Measurement,
    MissingParameterError,
    Rule,
)
from analytics.rules.frr import order
from analytics.timeseries import FloatArray, MissingSignalError
from analytics.verdicts import Product, TestType


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
        return cap * np.clip((50.0 - f) / 0.1, -1.0, 1.0)
    if product is Product.FCR_D_UP:
        return cap * np.clip((49.9 - f) / 0.4, 0.0, 1.0)
    if product is Product.FCR_D_DOWN:
        return -cap * np.clip((f - 50.1) / 0.4, 0.0, 1.0)
    level = ctx.params.ffr_activation_hz
    if level is None:
        raise MissingParameterError("ffr_activation_hz", "FFR expected response")
    return np.where(f <= level, cap, 0.0)


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


def _stored_energy(ctx: Context) -> tuple[FloatArray, float, float]:
    p = ctx.params
    if p.energy_capacity_mwh is None or p.energy_capacity_mwh <= 0:
        raise MissingParameterError("energy_capacity_mwh", "LER endurance", "usable MWh > 0")
    e_max = p.energy_capacity_mwh
    s = ctx.series
    if s.soc_pct is not None:
        soc = s.soc_pct
    elif p.initial_soc_pct is not None:
        parts = 0.5 * (s.power_mw[1:] + s.power_mw[:-1]) * np.diff(s.t)  # MWs per interval
        used_mwh = np.concatenate(([0.0], np.cumsum(parts))) / 3600.0
        soc = p.initial_soc_pct - 100.0 * used_mwh / e_max
    else:
        raise MissingParameterError("initial_soc_pct", "LER endurance", "or an SOC column")
    return soc / 100.0 * e_max, p.soc_min_pct / 100.0 * e_max, p.soc_max_pct / 100.0 * e_max


def ler_endurance(ctx: Context) -> Measurement:
    energy, e_min, e_max = _stored_energy(ctx)
    cap = ctx.capacity("LER endurance")
    up = float(np.min(energy - e_min)) / cap * 60.0
    down = float(np.min(e_max - energy)) / cap * 60.0
    if ctx.product is Product.FCR_N:
        value, need, which = min(up, down), 60.0, "min(up, down)"
    elif ctx.product is Product.FCR_D_UP:
        value, need, which = up, 20.0, "up"
    else:
        value, need, which = down, 20.0, "down"
    return Measurement(
        value, need, ">=", f"{which}; L_up={up:.1f} min, L_down={down:.1f} min, C={cap:.4f} MW"
    )


def _polarity_rule(product: Product) -> Rule:
    return Rule(
        rule_id=f"{product.tag}.POLARITY",
        product=product,
        test_types=frozenset(TestType),
        version=INHOUSE,
        requirement="response has the sign the activation asks for",
        reference="FlowerHub diagnostic (TR25 §3.4 activation curves)",
        unit="fraction",
        evaluate=polarity,
    )


def _ler_rule(product: Product, text: str, *, fn: Evaluator = ler_endurance) -> Rule:
    return Rule(
        rule_id=f"{product.tag}.LER.ENDURANCE",
        product=product,
        test_types=frozenset({TestType.OPERATION}),
        version=TR25,
        requirement=text,
        reference="TR25 §3.5, eqs 27-28",
        unit="min",
        evaluate=fn,
    )


RULES: tuple[Rule, ...] = (
    *(_polarity_rule(p) for p in Product),
    _ler_rule(Product.FCR_N, "LER endurance >= 60 min up and down"),
    _ler_rule(Product.FCR_D_UP, "LER endurance >= 20 min up"),
    _ler_rule(Product.FCR_D_DOWN, "LER endurance >= 20 min down"),
)
