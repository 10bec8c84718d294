"""FCR-D up/down dynamic ramp test (TR25 §3.1.2, sequence TR25 Table 4) and legacy figures.

Conventions (documented choices where TR25 gives none):

* Response R(t) = InsAcPow - CalcBaseline (or InsAcPow without a baseline); ΔP is R minus
  the pre-event level, the time-weighted mean of R over ``pre_window_s`` (10 s) before the
  ramp starts. Signs are projected on the product direction (up +1, down -1), so a
  wrong-sign response counts as negative and fails.
* P_ss,3 / P_ss,4: mean R from ramp end + ``ss_settle_s`` (10 s) to the next ramp start -
  ``ss_trim_s`` (10 s), as in homevolt's cruncher (the reference notes TR25 gives no window).
* Ramps 1..6 are the six transitions of the applied frequency from the first one that goes
  from 49.9 Hz to 49.45 Hz (down: 50.1 -> 50.55 Hz), each checked against the sequence's
  target frequency (±20 mHz: twice the ±10 mHz accuracy of the applied frequency, TR25
  §4.1), unless ``ramp_starts_s`` gives them.
* ΔP_ss,theo is ``dp_ss_theo_mw`` (the caller's approved method), else the capacity.
* Req 2/3 sustain: after 7.5 s "activated power must not fall below the 7.5-s value until
  ramp 6 starts; small well-damped oscillations inherent to the unit are allowed" (TR25
  §3.1.2). No tolerance is given, so none is applied; the oscillations are taken out by
  judging the smallest 10 s mean (:data:`SUSTAIN_MEAN_S`) against ΔP(7.5 s).
* Legacy (SvK FCR-D page): 50 % within 5 s and 100 % within 30 s of the start of ramp 3
  (to full activation), each confirmed by the 10 s mean (:mod:`analytics.rules.measure`);
  100 % means 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.rules.base import (
    SVK_LEGACY,
    TR25,
    Context,
    Evaluator,
    Measurement,
    Rule,
    TestSequenceError,
)
from analytics.rules.measure import min_held_mean, reach_held
from analytics.rules.segments import Transition, find_transitions
from analytics.timeseries import FCRD_TEST_RATE, FloatArray
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import (
    FCR_SS_OVER_TOLERANCE,
    FCR_SS_UNDER_TOLERANCE,
    FCRD_DOWN_START_HZ,
    FCRD_LEGACY_FULL_S,
    FCRD_LEGACY_HALF_FRACTION,
    FCRD_LEGACY_HALF_S,
    FCRD_REQ2_AFTER_S,
    FCRD_REQ2_FRACTION,
    FCRD_REQ3_ENERGY_S,
    FCRD_REQ4_ENERGY_S,
    FCRD_REQ4_FLOOR_FRACTION,
    FCRD_REQ4_NADIR_S,
    FCRD_REQ4_WINDOW_S,
    FCRD_UP_START_HZ,
    NOMINAL_HZ,
    CitedInt,
    cite,
    direction,
    rule_tag,
)

_TABLE4 = "[TR25 Table 4] FCR-D up ramps 1-6"
#: TR25 Table 4, up case: target frequency of ramps 1..6 and nominal ramp durations [s].
UP_TARGETS_HZ = tuple(cite(f, _TABLE4 + " target") for f in (49.45, 49.9, 49.5, 49.9, 49.0, 50.0))
NOMINAL_DURATION_S = tuple(
    cite(d, _TABLE4 + " ramp end - start") for d in (3.1, 5.0, 1.7, 1.7, 3.8, 4.2)
)
RAMPS = len(UP_TARGETS_HZ)
#: P_ss,3 / P_ss,4 are the holds after ramp 3 (full) and ramp 4 (zero).
RAMP_FULL = CitedInt(3, _TABLE4 + ": ramp 3, steady state full (P_ss,3)")
RAMP_ZERO = CitedInt(4, _TABLE4 + ": ramp 4, steady state zero (P_ss,4)")
NADIR_DELAY_S = FCRD_REQ4_NADIR_S
REQ4_WINDOW_S = FCRD_REQ4_WINDOW_S
T75 = FCRD_REQ2_AFTER_S
#: A detected ramp must end within this of the sequence's target frequency.
TARGET_TOL_HZ = cite(0.02, "FlowerHub: twice the ±10 mHz applied-frequency accuracy [TR25 §4.1]")
#: P_ss,3 / P_ss,4 average from ramp end + settle to the next ramp start - trim.
SS_SETTLE_S = cite(10.0, "[HV] fcr_ramp_file_cruncher: from 10 s after the ramp end")
SS_TRIM_S = cite(10.0, "[HV] fcr_ramp_file_cruncher: to 10 s before the next ramp")
#: Sustain (Req 2/3) and the legacy reach times are judged on means over this long.
SUSTAIN_MEAN_S = cite(
    10.0,
    "FlowerHub: TR25 §3.4.2's 10-s moving average ΔP̄; takes out the small well-damped "
    "oscillations TR25 §3.1.2 allows after 7.5 s",
)
METHOD = (
    f"FCR-D Req 2/3 sustain: the smallest {SUSTAIN_MEAN_S:g} s mean of ΔP between 7.5 s "
    "after ramp 5 and ramp 6 must not fall below ΔP(7.5 s) (no tolerance; the mean takes "
    "out the small oscillations TR25 §3.1.2 allows).",
    f"FCR-D legacy 50 %/5 s and 100 %/30 s: reached when ΔP is at the level and its next "
    f"{SUSTAIN_MEAN_S:g} s average at it too (100 % means 100 %).",
    f"FCR-D P_ss,3/P_ss,4: mean from {SS_SETTLE_S:g} s after a ramp to {SS_TRIM_S:g} s "
    "before the next (homevolt's windows; TR25 gives none).",
)


def targets(product: Product) -> tuple[float, ...]:
    """Ramp target frequencies; FCR-D down mirrors the up case about 50 Hz."""
    if product is Product.FCR_D_UP:
        return UP_TARGETS_HZ
    return tuple(round(2 * NOMINAL_HZ - f, 6) for f in UP_TARGETS_HZ)


@dataclass(frozen=True)
class RampTest:
    """Ramps 1..6 (index 0..5) of one FCR-D ramp test, with its direction and ΔP_ss,theo."""

    ramps: tuple[Transition, ...]
    sign: int
    dp_ss: float

    def ss_window(self, ctx: Context, ramp: int) -> tuple[float, float]:
        """Averaging window of the hold after ramp ``ramp`` (1-based)."""
        settle = SS_SETTLE_S if ctx.params.ss_settle_s is None else ctx.params.ss_settle_s
        trim = SS_TRIM_S if ctx.params.ss_trim_s is None else ctx.params.ss_trim_s
        return self.ramps[ramp - 1].t_end + settle, self.ramps[ramp].t_start - trim


def ramp_test(ctx: Context) -> RampTest:
    """Locate ramps 1..6 (cached per judge call)."""
    return ctx.cached("fcrd.ramps", _build_ramp_test)


def split_unresolved_hold(
    found: list[Transition], t: FloatArray, f: FloatArray, pre_hz: float, ramp1_hz: float
) -> list[Transition]:
    """Split an excursion pre -> ramp 1 target -> pre into ramps 1 and 2.

    Ramp 1 holds its target only 1.8 s before ramp 2 starts back (TR25 Table 4: ramp end
    33.1 s, ramp 2 at 34.9 s). Logged at 1 Hz (the TSO allowance) that hold is one or two
    samples, too short to confirm as a hold, so the two ramps come out as one transition
    from and to the pre-test level. When its extreme sample is at ramp 1's target (within
    :data:`TARGET_TOL_HZ`), the extreme is taken as the end of ramp 1 and the start of
    ramp 2.
    """
    out: list[Transition] = []
    for r in found:
        if abs(r.f_from - pre_hz) <= TARGET_TOL_HZ and abs(r.f_to - pre_hz) <= TARGET_TOL_HZ:
            inside = np.flatnonzero((t >= r.t_start) & (t <= r.t_end))
            if inside.size:
                seg = f[inside]
                k = int(np.argmin(seg) if ramp1_hz < pre_hz else np.argmax(seg))
                if abs(float(seg[k]) - ramp1_hz) <= TARGET_TOL_HZ:
                    t_ext = float(t[inside[k]])
                    out.append(Transition(r.t_start, t_ext, r.f_from, float(seg[k])))
                    out.append(Transition(t_ext, r.t_end, float(seg[k]), r.f_to))
                    continue
        out.append(r)
    return out


def _build_ramp_test(ctx: Context) -> RampTest:
    product = ctx.product
    want = targets(product)
    sign = direction(product)
    if ctx.params.ramp_starts_s is not None:
        starts = ctx.params.ramp_starts_s
        if len(starts) < RAMPS:
            raise TestSequenceError(
                f"ramp_starts_s needs ramps 1..{RAMPS}, got {len(starts)} times"
            )
        pre = FCRD_UP_START_HZ if sign > 0 else FCRD_DOWN_START_HZ
        froms = (pre, *want[:5])
        ramps = tuple(
            Transition(s, s + d, f0, f1)
            for s, d, f0, f1 in zip(starts[:6], NOMINAL_DURATION_S, froms, want, strict=True)
        )
    else:
        f = ctx.series.frequency("FCR-D ramp detection")
        found = split_unresolved_hold(
            find_transitions(ctx.series.t, f),
            ctx.series.t,
            f,
            FCRD_UP_START_HZ if sign > 0 else FCRD_DOWN_START_HZ,
            want[0],
        )
        if len(found) < RAMPS:
            raise TestSequenceError(
                f"FCR-D ramp test needs ramps 1..6 in the applied frequency, found {len(found)}"
                f" (targets {found and [round(r.f_to, 3) for r in found]})"
            )
        # Skip anything before ramp 1 (e.g. a lead-in from 50.0 Hz to the 49.9 Hz start).
        pre = FCRD_UP_START_HZ if sign > 0 else FCRD_DOWN_START_HZ
        first = next(
            (
                k
                for k, r in enumerate(found)
                if abs(r.f_from - pre) <= TARGET_TOL_HZ and abs(r.f_to - want[0]) <= TARGET_TOL_HZ
            ),
            0,
        )
        ramps = tuple(found[first : first + RAMPS])
        if len(ramps) < RAMPS:
            raise TestSequenceError(
                f"FCR-D ramp test: only {len(ramps)} ramps after ramp 1 at "
                f"t={found[first].t_start:.1f} s, needs ramps 1..6 (TR25 Table 4)"
            )
        for k, (ramp, target) in enumerate(zip(ramps, want, strict=True), start=1):
            if abs(ramp.f_to - target) > TARGET_TOL_HZ:
                raise TestSequenceError(
                    f"ramp {k} of the {product.value} test goes to {ramp.f_to:.3f} Hz at "
                    f"t={ramp.t_start:.1f} s, expected {target:.2f} Hz (TR25 Table 4)"
                )
    return RampTest(ramps=ramps, sign=sign, dp_ss=ctx.dp_ss("FCR-D ramp test"))


def _delta(ctx: Context, t_event: float, what: str) -> FloatArray:
    rt = ramp_test(ctx)
    return rt.sign * (ctx.response() - ctx.pre_level(t_event, what))


def req1_steady_state(ctx: Context) -> Measurement:
    """(P_ss,3 - P_ss,4 ∓ ΔP) / ΔP within -5 %/+20 % (up) or -20 %/+5 % (down)."""
    rt = ramp_test(ctx)
    r = ctx.response()
    p3 = ctx.series.mean(r, *rt.ss_window(ctx, RAMP_FULL), "P_ss,3")
    p4 = ctx.series.mean(r, *rt.ss_window(ctx, RAMP_ZERO), "P_ss,4")
    d = ctx.params.k_red_ss * rt.dp_ss
    if rt.sign > 0:
        ratio, lo, hi = (p3 - p4 - d) / d, -FCR_SS_UNDER_TOLERANCE, FCR_SS_OVER_TOLERANCE
    else:
        ratio, lo, hi = (p3 - p4 + d) / d, -FCR_SS_OVER_TOLERANCE, FCR_SS_UNDER_TOLERANCE
    return Measurement(
        ratio,
        lo,
        "between",
        f"P_ss,3={p3:.4f} MW, P_ss,4={p4:.4f} MW, ΔP_ss,theo={rt.sign * d:.4f} MW",
        threshold_high=hi,
    )


def _dp75(ctx: Context) -> tuple[float, float]:
    rt = ramp_test(ctx)
    t5 = rt.ramps[4].t_start
    dp = _delta(ctx, t5, "ramp 5")
    return t5, ctx.series.value_at(dp, t5 + T75, "ΔP(7.5 s) after ramp 5")


def req2_dp75(ctx: Context) -> Measurement:
    """ΔP 7.5 s after the start of ramp 5 >= 0.86·K_red,dyn·|ΔP_ss,theo|."""
    rt = ramp_test(ctx)
    t5, dp75 = _dp75(ctx)
    need = FCRD_REQ2_FRACTION * ctx.params.k_red_dyn * rt.dp_ss
    return Measurement(
        dp75, need, ">=", f"ramp 5 at t={t5:.2f} s; ΔP(7.5)/ΔP_ss,theo={dp75 / rt.dp_ss:.4f}"
    )


def req3_energy(ctx: Context) -> Measurement:
    """∫ ΔP over the first 7.5 s of ramp 5 >= 3.2 s·K_red,dyn·|ΔP_ss,theo| (trapezoid)."""
    rt = ramp_test(ctx)
    t5 = rt.ramps[4].t_start
    energy = ctx.series.integral(_delta(ctx, t5, "ramp 5"), t5, t5 + T75, "E(0-7.5 s)")
    need = FCRD_REQ3_ENERGY_S * ctx.params.k_red_dyn * rt.dp_ss
    return Measurement(
        energy, need, ">=", f"ramp 5 at t={t5:.2f} s; E/ΔP_ss,theo={energy / rt.dp_ss:.4f} s"
    )


def mean_s(ctx: Context) -> float:
    return SUSTAIN_MEAN_S if ctx.params.full_mean_s is None else ctx.params.full_mean_s


def req23_sustain(ctx: Context) -> Measurement:
    """After 7.5 s, the smallest 10 s mean of ΔP stays >= its 7.5 s value until ramp 6."""
    rt = ramp_test(ctx)
    t5, dp75 = _dp75(ctx)
    t6 = rt.ramps[5].t_start
    lowest, at = min_held_mean(
        ctx.series,
        _delta(ctx, t5, "ramp 5"),
        t5 + T75,
        t6,
        hold_s=mean_s(ctx),
        what="ramp 5 hold",
    )
    return Measurement(
        lowest,
        dp75,
        ">=",
        f"smallest {mean_s(ctx):g} s mean of ΔP over [{t5 + T75:.1f}, {t6:.1f}] s, at "
        f"t={at:.1f} s; ΔP(7.5)={dp75:.4f} MW, no tolerance",
    )


def req4_deactivation(ctx: Context) -> Measurement:
    """max_k ∫_{t_nadir}^{k} (ΔP - min(|ΔP_nadir|, 0.5|ΔP_ss|)) dt <= 2.5 s·|ΔP_ss,theo|."""
    rt = ramp_test(ctx)
    t1 = rt.ramps[0].t_start
    t_nadir = t1 + NADIR_DELAY_S
    dp = _delta(ctx, t1, "ramp 1")
    dp_nadir = ctx.series.value_at(dp, t_nadir, "ΔP at t_nadir")
    floor = min(abs(dp_nadir), FCRD_REQ4_FLOOR_FRACTION * rt.dp_ss)
    _, cum = ctx.series.cumulative_integral(
        dp - floor, t_nadir, t_nadir + REQ4_WINDOW_S, "Req 4 window"
    )
    excess = float(np.max(cum))
    return Measurement(
        excess,
        FCRD_REQ4_ENERGY_S * rt.dp_ss,
        "<=",
        f"t_nadir={t_nadir:.2f} s, ΔP_nadir={dp_nadir:.4f} MW, floor={floor:.4f} MW",
    )


def _legacy_reach(ctx: Context, fraction: float, limit_s: float) -> Measurement:
    """Time from the start of ramp 3 (to full activation) until ΔP >= fraction·ΔP_ss,
    confirmed by the mean over the next :data:`SUSTAIN_MEAN_S` inside ramp 3's hold."""
    rt = ramp_test(ctx)
    t3 = rt.ramps[2].t_start
    dp = _delta(ctx, t3, "ramp 3")
    t_hit = reach_held(
        ctx.series, dp, fraction * rt.dp_ss, t3, rt.ramps[3].t_start, hold_s=mean_s(ctx)
    )
    return Measurement(
        t_hit - t3,
        limit_s,
        "<=",
        f"ramp 3 at t={t3:.2f} s, target {fraction:.0%} of ΔP_ss held {mean_s(ctx):g} s on average",
    )


def legacy_half(ctx: Context) -> Measurement:
    return _legacy_reach(ctx, FCRD_LEGACY_HALF_FRACTION, FCRD_LEGACY_HALF_S)


def legacy_full(ctx: Context) -> Measurement:
    return _legacy_reach(ctx, 1.0, FCRD_LEGACY_FULL_S)


def _pct(fraction: float) -> str:
    """A fraction as a percentage for requirement texts (0.05 -> "5")."""
    return f"{fraction * 100:g}"


def _rules(product: Product) -> list[Rule]:
    ramp = frozenset({TestType.RAMP})
    tag = rule_tag(product)
    under, over = _pct(FCR_SS_UNDER_TOLERANCE), _pct(FCR_SS_OVER_TOLERANCE)
    bounds = f"-{under} %/+{over} %" if product is Product.FCR_D_UP else f"-{over} %/+{under} %"

    def rule(rid: str, version: str, text: str, ref: str, unit: str, *, fn: Evaluator) -> Rule:
        return Rule(
            rule_id=f"{tag}.{rid}",
            product=product,
            test_types=ramp,
            version=version,
            requirement=text,
            reference=ref,
            unit=unit,
            evaluate=fn,
            sampling=FCRD_TEST_RATE,
        )

    return [
        rule(
            "REQ1.SS",
            TR25,
            f"steady state P_ss,3-P_ss,4 within {bounds} of ΔP_ss,theo",
            "TR25 §3.1.2 Req 1",
            "fraction",
            fn=req1_steady_state,
        ),
        rule(
            "REQ2.DP75",
            TR25,
            f"ΔP({T75:g} s) >= {FCRD_REQ2_FRACTION:g}·ΔP_ss,theo",
            "TR25 §3.1.2 Req 2",
            "MW",
            fn=req2_dp75,
        ),
        rule(
            "REQ3.E75",
            TR25,
            f"E(0-{T75:g} s) >= {FCRD_REQ3_ENERGY_S:g} s·ΔP_ss,theo",
            "TR25 §3.1.2 Req 3",
            "MWs",
            fn=req3_energy,
        ),
        rule(
            "REQ23.SUSTAIN",
            TR25,
            "ΔP does not fall below the 7.5 s value until ramp 6",
            "TR25 §3.1.2 Req 2/3",
            "MW",
            fn=req23_sustain,
        ),
        rule(
            "REQ4.DEACT",
            TR25,
            f"deactivation excess energy <= {FCRD_REQ4_ENERGY_S:g} s·|ΔP_ss,theo|",
            "TR25 §3.1.2 Req 4",
            "MWs",
            fn=req4_deactivation,
        ),
        rule(
            "LEGACY.50PCT_5S",
            SVK_LEGACY,
            f"{_pct(FCRD_LEGACY_HALF_FRACTION)} % within {FCRD_LEGACY_HALF_S:g} s",
            "SvK FCR-D page",
            "s",
            fn=legacy_half,
        ),
        rule(
            "LEGACY.100PCT_30S",
            SVK_LEGACY,
            f"100 % within {FCRD_LEGACY_FULL_S:g} s",
            "SvK FCR-D page",
            "s",
            fn=legacy_full,
        ),
    ]


RULES: tuple[Rule, ...] = (*_rules(Product.FCR_D_UP), *_rules(Product.FCR_D_DOWN))
