"""aFRR and mFRR: full activation time after an order.

* aFRR (``FAT-5MIN``): full activation within 5 min (Fingrid, Statnett; no SvK figure found).
* mFRR (``EAM-2025-03-04``): standard product FAT 12.5 min (2.5 min preparation + 10 min
  ramp) in the Nordic energy activation market since 4 March 2025.
* mFRR (``SVK-LEGACY``): 100 % within 15 min (SvK mFRR page).

A series holds one order (the audit slices the log per activation). The order is a step
in the requested activation (series ``requested_mw``, CSV column
``ReqAcPow``), or ``requested_mw`` + ``activation_start_s`` given as parameters. The order
time is where the request first becomes non-zero; the target is the request there (signed:
positive = up/injection). ΔP = response minus its mean over the 10 s before the order,
projected on the sign of the target, so a response in the wrong direction never counts.
"Full" = ``full_fraction`` (default 95 %) of |target|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.rules.base import (
    AFRR_FAT,
    EAM25,
    SVK_LEGACY,
    Context,
    Evaluator,
    Measurement,
    MissingParameterError,
    Rule,
    TestSequenceError,
)
from analytics.timeseries import OPERATION_RATE
from analytics.verdicts import Product, TestType
from contract.products import (
    AFRR_FULL_ACTIVATION_S,
    MFRR_EAM_FULL_ACTIVATION_S,
    MFRR_FULL_ACTIVATION_S,
)


@dataclass(frozen=True)
class Order:
    t_start: float
    target_mw: float


def order(ctx: Context) -> Order:
    return ctx.cached("frr.order", _build_order)


def _build_order(ctx: Context) -> Order:
    p = ctx.params
    if p.requested_mw is not None:
        if p.activation_start_s is None:
            raise MissingParameterError("activation_start_s", "aFRR/mFRR", "with requested_mw")
        if p.requested_mw == 0:
            raise MissingParameterError("requested_mw", "aFRR/mFRR", "must be non-zero")
        return Order(p.activation_start_s, p.requested_mw)
    req = ctx.series.require_signal("requested_mw", "aFRR/mFRR full activation time")
    nonzero = np.flatnonzero(np.abs(req) > 1e-9)
    if nonzero.size == 0:
        raise TestSequenceError("aFRR/mFRR: the requested activation is zero throughout")
    i = int(nonzero[0])
    if p.activation_start_s is not None:
        return Order(p.activation_start_s, float(req[i]))
    return Order(float(ctx.series.t[i]), float(req[i]))


def _fat(ctx: Context, limit_s: float) -> Measurement:
    od = order(ctx)
    sign = 1.0 if od.target_mw > 0 else -1.0
    dp = sign * (ctx.response() - ctx.pre_level(od.t_start, "order"))
    level = ctx.params.full_fraction * abs(od.target_mw)
    t_hit = ctx.series.first_reach(dp, level, od.t_start)
    return Measurement(
        t_hit - od.t_start,
        limit_s,
        "<=",
        f"order at t={od.t_start:.1f} s for {od.target_mw:+.4f} MW; full = "
        f"{ctx.params.full_fraction:.0%} of the order",
    )


def _rule(product: Product, rid: str, version: str, text: str, ref: str, *, fn: Evaluator) -> Rule:
    return Rule(
        rule_id=rid,
        product=product,
        test_types=frozenset({TestType.ACTIVATION}),
        version=version,
        requirement=text,
        reference=ref,
        unit="s",
        evaluate=fn,
        sampling=OPERATION_RATE,
    )


def afrr_fat(ctx: Context) -> Measurement:
    return _fat(ctx, AFRR_FULL_ACTIVATION_S)


def mfrr_fat_eam(ctx: Context) -> Measurement:
    return _fat(ctx, MFRR_EAM_FULL_ACTIVATION_S)


def mfrr_fat_legacy(ctx: Context) -> Measurement:
    return _fat(ctx, MFRR_FULL_ACTIVATION_S)


RULES: tuple[Rule, ...] = (
    _rule(
        Product.AFRR,
        "AFRR.FAT",
        AFRR_FAT,
        f"full activation within {AFRR_FULL_ACTIVATION_S / 60:g} min",
        "Fingrid aFRR; Statnett aFRR",
        fn=afrr_fat,
    ),
    _rule(
        Product.MFRR,
        "MFRR.FAT",
        EAM25,
        f"full activation within {MFRR_EAM_FULL_ACTIVATION_S / 60:g} min",
        "Fingrid mFRR T&C 4.3.2025 (standard product)",
        fn=mfrr_fat_eam,
    ),
    _rule(
        Product.MFRR,
        "MFRR.LEGACY.FAT",
        SVK_LEGACY,
        f"100 % within {MFRR_FULL_ACTIVATION_S / 60:g} min",
        "SvK mFRR page",
        fn=mfrr_fat_legacy,
    ),
)
