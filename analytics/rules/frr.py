"""aFRR and mFRR: full activation after an order, and the mFRR standard product's hold.

* aFRR (``FAT-5MIN``): full activation within 5 min (Fingrid, Statnett; no SvK figure found).
* mFRR (``EAM-2025-03-04``), the standard product of the Nordic energy activation market
  since 4 March 2025 [FG-mFRR-TC], [FG-dev-mFRR]: FAT 12.5 min (2.5 min preparation + 10 min
  ramp) from the activation message, which comes 7.5 min before the MTU starts; full power
  is therefore due 5 min after the MTU start and held until 5 min before the MTU end.

  - ``MFRR.FAT``: a MarketActivation's ``start_time`` is the MTU start (MarketActivation.avsc),
    so full power is due 5 min after the order's start. Reading the start as the activation
    message instead would allow 12.5 min; the audit judges the stricter reading and shows
    the other beside it (``other_reading``).
  - ``MFRR.HOLD``: from MTU start + 5 min to MTU end - 5 min (>= 5 min for one 15-min MTU)
    the response stays at 100 % of the order: the smallest 10 s mean over that window,
    as a fraction of the order, must be >= 1. The other reading's window starts 12.5 min
    after the start. An order too short to leave a hold window (< 10 min + the mean) is
    skipped with that reason (``skipped_rules``).
* mFRR (``SVK-LEGACY``): 100 % within 15 min of the order (SvK mFRR page).

A series holds one order (the audit slices the log per activation). The order is a step
in the requested activation (series ``requested_mw``, CSV column ``ReqAcPow``), or
``requested_mw`` + ``activation_start_s`` (+ ``activation_end_s``) given as parameters. The
order starts where the request first becomes non-zero and ends where it returns to zero
(else at the end of the data); the target is the request at the start (signed: positive =
up/injection). ΔP = response minus its mean over the 10 s before the order, projected on
the sign of the target, so a response in the wrong direction never counts. "Full" = 100 %
of |target| (no source gives a tolerance) confirmed by the mean over the next 10 s
(:mod:`analytics.rules.measure`).
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
from analytics.rules.measure import min_held_mean, reach_held
from analytics.timeseries import OPERATION_RATE, FloatArray
from analytics.verdicts import TestType, passes
from contract.enums import Product
from contract.products import (
    AFRR_FULL_ACTIVATION_S,
    MFRR_EAM_FULL_ACTIVATION_S,
    MFRR_EAM_FULL_AFTER_MTU_START_S,
    MFRR_EAM_HOLD_S,
    MFRR_EAM_RAMP_DOWN_S,
    MFRR_FULL_ACTIVATION_S,
    cite,
)

#: "Full" is confirmed (and a hold judged) by means over this long.
FULL_MEAN_S = cite(
    10.0,
    "FlowerHub: the 10-s moving average TR25 §3.4.2 applies to a delivered response (the "
    "one averaging window the requirements give); aFRR setpoints come every 10 s [FG-aFRR]",
)
METHOD = (
    f"aFRR/mFRR: full = 100 % of the order (no source gives a tolerance), confirmed by the "
    f"mean over the next {FULL_MEAN_S:g} s ({FULL_MEAN_S.source}).",
    "mFRR standard product (EAM since 2025-03-04): an order's start is its MTU start "
    "(MarketActivation.avsc), so full power is due 5 min after it (FAT 12.5 min counted "
    "from the activation message 7.5 min earlier) and held until 5 min before the MTU end; "
    "the reading that counts 12.5 min from the order's start is shown beside (facts §1.4 "
    "UNCERTAIN: SvK's page still says 15 min, judged as SVK-LEGACY).",
)


@dataclass(frozen=True)
class Order:
    t_start: float
    target_mw: float
    t_end: float


def order(ctx: Context) -> Order:
    return ctx.cached("frr.order", _build_order)


def _build_order(ctx: Context) -> Order:
    p = ctx.params
    data_end = float(ctx.series.t[-1])
    if p.requested_mw is not None:
        if p.activation_start_s is None:
            raise MissingParameterError("activation_start_s", "aFRR/mFRR", "with requested_mw")
        if p.requested_mw == 0:
            raise MissingParameterError("requested_mw", "aFRR/mFRR", "must be non-zero")
        end = data_end if p.activation_end_s is None else min(p.activation_end_s, data_end)
        return Order(p.activation_start_s, p.requested_mw, end)
    req = ctx.series.require_signal("requested_mw", "aFRR/mFRR full activation time")
    nonzero = np.abs(req) > 1e-9
    first = np.flatnonzero(nonzero)
    if first.size == 0:
        raise TestSequenceError("aFRR/mFRR: the requested activation is zero throughout")
    i = int(first[0])
    back = np.flatnonzero(~nonzero[i:])
    end = float(ctx.series.t[i + int(back[0])]) if back.size else data_end
    start = float(ctx.series.t[i]) if p.activation_start_s is None else p.activation_start_s
    return Order(start, float(req[i]), end)


def full_mean_s(ctx: Context) -> float:
    return FULL_MEAN_S if ctx.params.full_mean_s is None else ctx.params.full_mean_s


def _delta(ctx: Context, od: Order) -> FloatArray:
    sign = 1.0 if od.target_mw > 0 else -1.0
    dp: FloatArray = sign * (ctx.response() - ctx.pre_level(od.t_start, "order"))
    return dp


def _time_to_full(ctx: Context) -> tuple[Order, float]:
    od = order(ctx)
    t_hit = reach_held(
        ctx.series, _delta(ctx, od), abs(od.target_mw), od.t_start, hold_s=full_mean_s(ctx)
    )
    return od, t_hit - od.t_start


def _detail(ctx: Context, od: Order) -> str:
    return (
        f"order at t={od.t_start:.1f} s for {od.target_mw:+.4f} MW until t={od.t_end:.1f} s; "
        f"full = 100 % of the order held {full_mean_s(ctx):g} s on average"
    )


def _fat(ctx: Context, limit_s: float) -> Measurement:
    od, measured = _time_to_full(ctx)
    return Measurement(measured, limit_s, "<=", _detail(ctx, od))


def afrr_fat(ctx: Context) -> Measurement:
    return _fat(ctx, AFRR_FULL_ACTIVATION_S)


def mfrr_fat_eam(ctx: Context) -> Measurement:
    od, measured = _time_to_full(ctx)
    other = "PASS" if passes(measured, "<=", MFRR_EAM_FULL_ACTIVATION_S) else "FAIL"
    return Measurement(
        measured,
        MFRR_EAM_FULL_AFTER_MTU_START_S,
        "<=",
        _detail(ctx, od) + "; the order's start is its MTU start",
        other_reading=f"{MFRR_EAM_FULL_ACTIVATION_S / 60:g} min counted from the order's "
        f"start (the start read as the activation message): {other}",
    )


def mfrr_fat_legacy(ctx: Context) -> Measurement:
    return _fat(ctx, MFRR_FULL_ACTIVATION_S)


def _hold_window(od: Order, full_after_s: float) -> tuple[float, float]:
    return od.t_start + full_after_s, od.t_end - MFRR_EAM_RAMP_DOWN_S


def has_hold_window(ctx: Context) -> str | None:
    """MFRR.HOLD applies when the order leaves a window to hold full power in."""
    od = order(ctx)
    a, b = _hold_window(od, MFRR_EAM_FULL_AFTER_MTU_START_S)
    if b - a >= full_mean_s(ctx):
        return None
    return (
        f"an order long enough to hold full power from MTU start + "
        f"{MFRR_EAM_FULL_AFTER_MTU_START_S / 60:g} min to MTU end - "
        f"{MFRR_EAM_RAMP_DOWN_S / 60:g} min (this one lasts {od.t_end - od.t_start:.0f} s)"
    )


def _held_fraction(ctx: Context, od: Order, a: float, b: float) -> tuple[float, float]:
    low, at = min_held_mean(
        ctx.series, _delta(ctx, od), a, b, hold_s=full_mean_s(ctx), what="mFRR hold"
    )
    return low / abs(od.target_mw), at


def mfrr_hold(ctx: Context) -> Measurement:
    od = order(ctx)
    a, b = _hold_window(od, MFRR_EAM_FULL_AFTER_MTU_START_S)
    low, at = _held_fraction(ctx, od, a, b)
    oa, ob = _hold_window(od, MFRR_EAM_FULL_ACTIVATION_S)
    if ob - oa >= full_mean_s(ctx):
        other_low, _ = _held_fraction(ctx, od, oa, ob)
        other = f"{'PASS' if passes(other_low, '>=', 1.0) else 'FAIL'} ({other_low:.4f})"
    else:
        other = "no window left to judge"
    short = " (shorter than the 5 min one MTU gives)" if b - a < MFRR_EAM_HOLD_S else ""
    return Measurement(
        low,
        1.0,
        ">=",
        f"hold window [{a:.1f}, {b:.1f}] s ({b - a:.0f} s{short}); smallest "
        f"{full_mean_s(ctx):g} s mean at t={at:.1f} s; order {od.target_mw:+.4f} MW",
        other_reading=f"window from {MFRR_EAM_FULL_ACTIVATION_S / 60:g} min after the "
        f"order's start: {other}",
    )


def _rule(
    product: Product,
    rid: str,
    version: str,
    text: str,
    ref: str,
    *,
    fn: Evaluator,
    unit: str = "s",
) -> Rule:
    return Rule(
        rule_id=rid,
        product=product,
        test_types=frozenset({TestType.ACTIVATION}),
        version=version,
        requirement=text,
        reference=ref,
        unit=unit,
        evaluate=fn,
        sampling=OPERATION_RATE,
        precondition=has_hold_window if rid == "MFRR.HOLD" else None,
    )


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
        f"full power {MFRR_EAM_FULL_AFTER_MTU_START_S / 60:g} min after the MTU start "
        f"(FAT {MFRR_EAM_FULL_ACTIVATION_S / 60:g} min from the activation message)",
        "Fingrid mFRR T&C 4.3.2025 (standard product); Fingrid mFRR EAM",
        fn=mfrr_fat_eam,
    ),
    _rule(
        Product.MFRR,
        "MFRR.HOLD",
        EAM25,
        f"full power held from MTU start + {MFRR_EAM_FULL_AFTER_MTU_START_S / 60:g} min "
        f"to MTU end - {MFRR_EAM_RAMP_DOWN_S / 60:g} min",
        "Fingrid mFRR T&C 4.3.2025 (standard product)",
        fn=mfrr_hold,
        unit="fraction",
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
