"""FFR: activation time, support duration and 100 ms logging (SvK FFR page, Fingrid FFR).

Activation options (the provider picks one) pair as the sources give them: 49.7 Hz -> full
activation within 1.3 s, 49.6 Hz -> 1.0 s, 49.5 Hz -> 0.7 s. The project brief stated the
reverse pairing; the reference flags that as a CONFLICT and we follow the sources.

Conventions:

* t_a, the activation instant, is where the frequency (applied, else grid) first falls to
  ``ffr_activation_hz`` (interpolated), or ``activation_start_s``.
* ΔP = response minus its mean over the 10 s before t_a; "full" = ``full_fraction`` (95 %)
  of the FFR capacity C (``capacity_mw`` or the Cap_ column).
* Support duration runs from full activation until ΔP first falls below full again (or the
  end of the data). It must be >= 30 s, or >= 5 s when the deactivation rate - the largest
  drop over any 1 s after support, as a fraction of C - is <= 20 %/s.
* Sampling: the active power must be sampled at <= 100 ms from 10 s before t_a to the end of
  the data (or 15 min after); coarser sampling raises SamplingRateError naming FFR. The
  FFR.SAMPLING verdict checks that the 100 ms log starts >= 10 s before t_a.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.rules.base import (
    SVK_FFR,
    Context,
    Evaluator,
    Measurement,
    MissingParameterError,
    Rule,
    TestSequenceError,
)
from analytics.timeseries import FFR_EVENT_RATE, RATE_SLACK
from analytics.verdicts import Product, TestType
from contract.products import (
    FFR_OPTIONS,
    FFR_SHORT_SUPPORT_S,
    FFR_SLOW_DEACTIVATION,
    FFR_SUPPORT_S,
)

PRE_LOG_S = 10.0
POST_LOG_S = 900.0
_OPTIONS_HZ = ", ".join(f"{hz:g}" for hz in FFR_OPTIONS)
_OPTIONS_HZ_OR = " or ".join(_OPTIONS_HZ.rsplit(", ", 1))


def option_time(activation_hz: float) -> float:
    """Required full-activation time for an FFR option; error for an unknown option."""
    for hz, seconds in FFR_OPTIONS.items():
        if abs(hz - activation_hz) < 1e-6:
            return seconds
    raise MissingParameterError(
        "ffr_activation_hz", "FFR", f"{activation_hz} Hz is not an option ({_OPTIONS_HZ})"
    )


@dataclass(frozen=True)
class FfrEvent:
    t_a: float
    option_hz: float
    capacity: float
    t_full: float  # NaN if never fully activated
    t_drop: float  # end of support (NaN if never activated)
    censored: bool  # data ended during support
    deactivation_rate: float  # fraction of C per second (NaN if not observed)


def ffr_event(ctx: Context) -> FfrEvent:
    return ctx.cached("ffr.event", _build_event)


def _build_event(ctx: Context) -> FfrEvent:
    p = ctx.params
    if p.ffr_activation_hz is None:
        raise MissingParameterError("ffr_activation_hz", "FFR", f"{_OPTIONS_HZ_OR} Hz")
    option_time(p.ffr_activation_hz)
    s = ctx.series
    if p.activation_start_s is not None:
        t_a = p.activation_start_s
    else:
        t_a = s.first_reach(-s.frequency("FFR activation"), -p.ffr_activation_hz, float(s.t[0]))
        if np.isnan(t_a):
            raise TestSequenceError(
                f"FFR: frequency never reaches the {p.ffr_activation_hz} Hz activation level"
            )
    s.require_rate(
        FFR_EVENT_RATE, max(t_a - PRE_LOG_S, float(s.t[0])), min(t_a + POST_LOG_S, float(s.t[-1]))
    )
    cap = ctx.capacity("FFR")
    dp = ctx.response() - ctx.pre_level(t_a, "FFR", clamp=True)
    full = p.full_fraction * cap
    t_full = s.first_reach(dp, full, t_a)
    if np.isnan(t_full):
        return FfrEvent(t_a, p.ffr_activation_hz, cap, t_full, t_full, False, float("nan"))
    end = float(s.t[-1])
    t_drop = s.first_reach(-dp, -full, t_full + 1e-9) if t_full + 1e-9 < end else float("nan")
    censored = bool(np.isnan(t_drop))
    rate = float("nan")
    if not censored and t_drop + 1.0 <= end:
        tt = s.t[(s.t >= t_drop) & (s.t + 1.0 <= end)]
        tt = np.concatenate(([t_drop], tt))
        drop = np.interp(tt, s.t, dp) - np.interp(tt + 1.0, s.t, dp)
        rate = float(np.max(drop)) / cap
    return FfrEvent(
        t_a, p.ffr_activation_hz, cap, t_full, end if censored else t_drop, censored, rate
    )


def activation_time(ctx: Context) -> Measurement:
    ev = ffr_event(ctx)
    return Measurement(
        ev.t_full - ev.t_a,
        option_time(ev.option_hz),
        "<=",
        f"option {ev.option_hz} Hz, t_a={ev.t_a:.3f} s, C={ev.capacity:.4f} MW, "
        f"full={ctx.params.full_fraction:.0%} of C",
    )


def support_duration(ctx: Context) -> Measurement:
    ev = ffr_event(ctx)
    slow = not np.isnan(ev.deactivation_rate) and ev.deactivation_rate <= FFR_SLOW_DEACTIVATION
    need = FFR_SHORT_SUPPORT_S if slow else FFR_SUPPORT_S
    rate = "not observed" if np.isnan(ev.deactivation_rate) else f"{ev.deactivation_rate:.1%}/s"
    note = " (data ends during support)" if ev.censored else ""
    return Measurement(
        ev.t_drop - ev.t_full,
        need,
        ">=",
        f"deactivation rate {rate} of C; {need:.0f} s required{note}",
    )


def sampling(ctx: Context) -> Measurement:
    ev = ffr_event(ctx)
    s = ctx.series
    before = s.t[s.t <= ev.t_a]
    steps = np.diff(before)
    coarse = np.flatnonzero(steps > FFR_EVENT_RATE.max_interval_s * RATE_SLACK)
    first = float(before[coarse[-1] + 1]) if coarse.size else float(s.t[0])
    return Measurement(
        ev.t_a - first, PRE_LOG_S, ">=", f"100 ms log starts at t={first:.3f} s, t_a={ev.t_a:.3f} s"
    )


def _rule(
    rid: str, text: str, ref: str, unit: str, *, fn: Evaluator, version: str = SVK_FFR
) -> Rule:
    return Rule(
        rule_id=f"FFR.{rid}",
        product=Product.FFR,
        test_types=frozenset({TestType.ACTIVATION}),
        version=version,
        requirement=text,
        reference=ref,
        unit=unit,
        evaluate=fn,
    )


RULES: tuple[Rule, ...] = (
    _rule(
        "ACTIVATION_TIME",
        "full activation within "
        + "/".join(f"{s:.1f}" for s in FFR_OPTIONS.values())
        + " s at "
        + "/".join(f"{hz:g}" for hz in FFR_OPTIONS)
        + " Hz",
        "SvK FFR page; Fingrid FFR",
        "s",
        fn=activation_time,
    ),
    _rule(
        "SUPPORT_DURATION",
        f"support >= {FFR_SUPPORT_S:g} s (>= {FFR_SHORT_SUPPORT_S:g} s if deactivation "
        f"<= {FFR_SLOW_DEACTIVATION * 100:g} %/s of C)",
        "SvK FFR page; Fingrid FFR",
        "s",
        fn=support_duration,
    ),
    _rule(
        "SAMPLING",
        "100 ms power logging from 10 s before activation",
        "SvK Q&A FFR",
        "s",
        fn=sampling,
    ),
)
