"""FFR: activation time, support duration and 100 ms logging (SvK FFR page, Fingrid FFR).

Activation options (the provider picks one) pair as the sources give them: 49.7 Hz -> full
activation within 1.3 s, 49.6 Hz -> 1.0 s, 49.5 Hz -> 0.7 s. The project brief stated the
reverse pairing; the reference flags that as a CONFLICT and we follow the sources.

Conventions:

* t_a, the activation instant, is where the frequency (applied, else grid) first falls to
  ``ffr_activation_hz`` (interpolated), or ``activation_start_s``.
* ΔP = response minus its mean over the 10 s before t_a; "full" = 100 % of the FFR capacity
  C (``capacity_mw`` or the Cap_ column) - the sources say full activation and give no
  tolerance - confirmed by the mean over the following :data:`FULL_MEAN_S` (1 s,
  :mod:`analytics.rules.measure`): the first instant ΔP >= C whose next second averages
  >= C too. A 1 s mean keeps one noisy 100 ms sample from deciding and is shorter than the
  shortest support any option requires (5 s), so a compliant response always confirms.
* Support duration runs from full activation until ΔP falls below C and its next 1 s
  averages below C (or the end of the data). It must be >= 30 s, or >= 5 s when the
  deactivation rate - the largest drop over any 1 s after support, as a fraction of C - is
  <= 20 %/s.
* The project brief paired the options the other way round (49.7 Hz -> 0.7 s, 49.5 Hz ->
  1.3 s); facts §1.2 flags that as a CONFLICT with the brief, not between sources: SvK's
  and both Fingrid pages agree on the pairing above, so the sources decide and the
  activation-time verdict shows the brief's reading beside it (``other_reading``).
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
from analytics.rules.measure import reach_held
from analytics.timeseries import FFR_EVENT_RATE, RATE_SLACK
from analytics.verdicts import TestType, passes
from contract.enums import Product
from contract.products import (
    FFR_BRIEF_OPTIONS,
    FFR_OPTIONS,
    FFR_POST_LOG_S,
    FFR_PRE_LOG_S,
    FFR_SHORT_SUPPORT_S,
    FFR_SLOW_DEACTIVATION,
    FFR_SUPPORT_S,
    cite,
)

PRE_LOG_S = FFR_PRE_LOG_S
POST_LOG_S = FFR_POST_LOG_S
#: "Full" (and the end of support) is confirmed by the mean over this long (module doc).
FULL_MEAN_S = cite(
    1.0,
    "FlowerHub: 10 samples of the 100 ms log [SVK-QA-FFR], shorter than the shortest "
    "support (5 s) [SVK-FFR]",
)
#: The deactivation rate is the largest drop over this long, as a fraction of C per second.
RATE_WINDOW_S = cite(1.0, "[SVK-FFR], [FG-FFR] deactivation rate in % of C per second")
METHOD = (
    f"FFR: full activation = 100 % of the capacity (no tolerance: the sources say full), "
    f"confirmed by the mean over the next {FULL_MEAN_S:g} s ({FULL_MEAN_S.source}); support "
    "ends where the response falls below 100 % and its next second averages below it.",
    "FFR options: 49.7 Hz -> 1.3 s, 49.6 Hz -> 1.0 s, 49.5 Hz -> 0.7 s (SvK FFR page, "
    "Fingrid); the project brief's reverse pairing contradicts every source and is shown "
    "beside the activation-time verdict only.",
)
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
    hold = full_mean_s(ctx)
    t_full = reach_held(s, dp, cap, t_a, hold_s=hold)
    if np.isnan(t_full):
        return FfrEvent(t_a, p.ffr_activation_hz, cap, t_full, t_full, False, float("nan"))
    end = float(s.t[-1])
    t_drop = (
        reach_held(s, dp, cap, t_full + 1e-9, hold_s=hold, below=True)
        if t_full + 1e-9 < end
        else float("nan")
    )
    censored = bool(np.isnan(t_drop))
    rate = float("nan")
    if not censored and t_drop + RATE_WINDOW_S <= end:
        tt = s.t[(s.t >= t_drop) & (s.t + RATE_WINDOW_S <= end)]
        tt = np.concatenate(([t_drop], tt))
        drop = np.interp(tt, s.t, dp) - np.interp(tt + RATE_WINDOW_S, s.t, dp)
        rate = float(np.max(drop)) / cap / RATE_WINDOW_S
    return FfrEvent(
        t_a, p.ffr_activation_hz, cap, t_full, end if censored else t_drop, censored, rate
    )


def full_mean_s(ctx: Context) -> float:
    """The confirming mean's window: the parameter, else :data:`FULL_MEAN_S`."""
    return FULL_MEAN_S if ctx.params.full_mean_s is None else ctx.params.full_mean_s


def _brief_time(activation_hz: float) -> float:
    for hz, seconds in FFR_BRIEF_OPTIONS.items():
        if abs(hz - activation_hz) < 1e-6:
            return seconds
    return float("nan")


def activation_time(ctx: Context) -> Measurement:
    ev = ffr_event(ctx)
    measured = ev.t_full - ev.t_a
    brief = _brief_time(ev.option_hz)
    verdict = "PASS" if passes(measured, "<=", brief) else "FAIL"
    return Measurement(
        measured,
        option_time(ev.option_hz),
        "<=",
        f"option {ev.option_hz} Hz, t_a={ev.t_a:.3f} s, C={ev.capacity:.4f} MW, "
        f"full = 100 % of C held {full_mean_s(ctx):g} s on average",
        other_reading=f"project brief's pairing ({ev.option_hz:g} Hz -> {brief:g} s, "
        f"contradicted by SvK and Fingrid): {verdict}",
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
        f"100 ms power logging from {PRE_LOG_S:g} s before activation",
        "SvK Q&A FFR",
        "s",
        fn=sampling,
    ),
)
