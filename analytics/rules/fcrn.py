"""FCR-N step test (TR25 §3.1.1, sequence TR25 Table 3) and the legacy SvK figures.

TR25 Req 1: steps are located from the applied frequency: the holds at 50.0 Hz (P_ss,0),
49.9 Hz (P_ss,1), 50.1 Hz (P_ss,2) and 50.0 Hz again (P_ss,3), in that order (the 49.95 Hz
backlash pre-step may precede them), unless ``step_bounds_s`` gives the five boundaries.
P_ss,k is the time-weighted mean response over the hold from its start + ``ss_settle_s``
(default 240 s, i.e. the last minute of a 5-min step) to its end - ``ss_trim_s`` (2 s).
TR25 gives no averaging window; the default follows its note that FCR-N "may wait up to
4 min for steady state".

Legacy (SvK FCR-N page, SVK-LEGACY): 63 % within 60 s and 100 % within 3 min of a ±0.1 Hz
step. The legacy test was run as steps from 50.0 Hz with returns to 50.0 Hz in between
(e.g. 50.0, 49.9, 50.0, 50.1, 50.0), not in TR25's order, so these rules find every step
of the applied frequency between 49.9, 50.0 and 50.1 Hz in any order (0.1 Hz steps and
0.2 Hz ones straight across; smaller ones such as TR25's 49.95 Hz backlash pre-step are
not legacy steps and are listed as ignored). A return to 50.0 Hz is a step too, judged
like the others: deactivation must behave like activation (TR25 §3.1.2). Each step's
target is ΔP_ss,theo per 0.1 Hz of the step, from the mean response over the 10 s before
it; "up" steps (the frequency falls) and "down" steps are judged by their own rules, each
reporting its slowest step. A level is reached when the response is at it and its next
10 s average at it too (:mod:`analytics.rules.measure`), inside the step's hold: 100 %
means 100 %. A recording with no step of a direction is a :class:`TestSequenceError`
naming the holds found.
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
from analytics.rules.measure import reach_held
from analytics.rules.segments import Transition, find_transitions
from analytics.timeseries import FCRN_TEST_RATE
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import (
    FCR_SS_OVER_TOLERANCE,
    FCR_SS_UNDER_TOLERANCE,
    FCRN_BAND_HZ,
    FCRN_FULL_DOWN_HZ,
    FCRN_FULL_UP_HZ,
    FCRN_LEGACY_FULL_S,
    FCRN_LEGACY_RAMP_FRACTION,
    FCRN_LEGACY_RAMP_S,
    NOMINAL_HZ,
    CitedInt,
    cite,
)

# steps 0..3 (TR25 Table 3): nominal, full up, full down, nominal
LEVELS_HZ = (NOMINAL_HZ, FCRN_FULL_UP_HZ, FCRN_FULL_DOWN_HZ, NOMINAL_HZ)
#: P_ss,3: the hold at 50.0 Hz after step 3.
HOLD_AFTER = CitedInt(3, "[TR25 Table 3] step 3 at 50.0 Hz (P_ss,3)")
#: A hold counts as a level when within this of it.
LEVEL_TOL_HZ = cite(0.01, "[TR25 §4.1 Table 16] applied frequency accuracy ±10 mHz")
#: P_ss,k averages from the hold start + settle to its end - trim.
SS_SETTLE_S = cite(240.0, "[TR25 §3.4.2] FCR-N may wait up to 4 min for steady state")
SS_TRIM_S = cite(2.0, "FlowerHub: leaves the step edge (one 1 Hz log interval + 1 s) out")
#: Legacy reach times are confirmed by the mean over this long after the level is reached.
LEGACY_MEAN_S = cite(
    10.0, "FlowerHub: TR25 §3.4.2's 10-s moving average ΔP̄ of a stepped FCR response"
)
METHOD = (
    f"FCR-N legacy 63 %/60 s and 100 %/3 min: every ±0.1 Hz step between 49.9, 50.0 and "
    f"50.1 Hz in any order (returns included); a level counts as reached when ΔP is at it "
    f"and its next {LEGACY_MEAN_S:g} s average at it too (100 % means 100 %).",
    f"FCR-N P_ss,k: mean from {SS_SETTLE_S:g} s after the step to {SS_TRIM_S:g} s before "
    "the next (TR25: up to 4 min to steady state).",
)


@dataclass(frozen=True)
class StepTest:
    """Bounds [start, end] of holds 0..3 and |ΔP_ss,theo| (MW)."""

    holds: tuple[tuple[float, float], ...]
    dp_ss: float

    def p_ss(self, ctx: Context, k: int) -> float:
        settle = SS_SETTLE_S if ctx.params.ss_settle_s is None else ctx.params.ss_settle_s
        trim = SS_TRIM_S if ctx.params.ss_trim_s is None else ctx.params.ss_trim_s
        start, end = self.holds[k]
        return ctx.series.mean(ctx.response(), start + settle, end - trim, f"P_ss,{k}")


def _holds(ctx: Context) -> tuple[list[Transition], list[tuple[float, float, float]]]:
    """Transitions of the applied frequency and the holds (level, start, end) between."""
    series = ctx.series
    found = ctx.cached(
        "fcrn.transitions",
        lambda c: find_transitions(c.series.t, c.series.frequency("FCR-N step detection")),
    )
    holds_all: list[tuple[float, float, float]] = []
    start, level = float(series.t[0]), found[0].f_from if found else float("nan")
    for tr in found:
        holds_all.append((level, start, tr.t_start))
        start, level = tr.t_end, tr.f_to
    holds_all.append((level, start, float(series.t[-1])))
    return found, holds_all


def step_test(ctx: Context) -> StepTest:
    return ctx.cached("fcrn.steps", _build_step_test)


def _build_step_test(ctx: Context) -> StepTest:
    bounds = ctx.params.step_bounds_s
    if bounds is not None:
        if len(bounds) != len(LEVELS_HZ) + 1:
            raise TestSequenceError(
                f"step_bounds_s needs {len(LEVELS_HZ) + 1} times, got {len(bounds)}"
            )
        holds = tuple((bounds[k], bounds[k + 1]) for k in range(len(LEVELS_HZ)))
        return StepTest(holds=holds, dp_ss=ctx.dp_ss("FCR-N step test"))
    _, holds_all = _holds(ctx)
    for i in range(len(holds_all) - len(LEVELS_HZ) + 1):
        window = holds_all[i : i + len(LEVELS_HZ)]
        if all(abs(h[0] - want) <= LEVEL_TOL_HZ for h, want in zip(window, LEVELS_HZ, strict=True)):
            return StepTest(
                holds=tuple((h[1], h[2]) for h in window), dp_ss=ctx.dp_ss("FCR-N step test")
            )
    seen = [round(h[0], 3) for h in holds_all]
    raise TestSequenceError(
        f"FCR-N step test needs holds at 50.0, 49.9, 50.1, 50.0 Hz in order (TR25 Table 3); "
        f"applied frequency holds at {seen}"
    )


# ------------------------------------------------------------------ legacy steps
@dataclass(frozen=True)
class LegacyStep:
    """One ±0.1 (or 0.2) Hz step: when, from/to which level, until the next transition."""

    t_step: float
    t_next: float
    f_from: float
    f_to: float

    @property
    def units(self) -> float:
        """The step in units of the FCR-N band (+1 = 50.0 -> 49.9 Hz: a full up step)."""
        return (self.f_from - self.f_to) / FCRN_BAND_HZ


@dataclass(frozen=True)
class LegacySteps:
    steps: tuple[LegacyStep, ...]
    ignored: tuple[str, ...]
    holds: tuple[float, ...]


_LEGACY_LEVELS = (FCRN_FULL_UP_HZ, NOMINAL_HZ, FCRN_FULL_DOWN_HZ)


def _on_level(f: float) -> bool:
    return any(abs(f - level) <= LEVEL_TOL_HZ for level in _LEGACY_LEVELS)


def legacy_steps(ctx: Context) -> LegacySteps:
    return ctx.cached("fcrn.legacy", _build_legacy_steps)


def _build_legacy_steps(ctx: Context) -> LegacySteps:
    found, holds_all = _holds(ctx)
    end = float(ctx.series.t[-1])
    steps: list[LegacyStep] = []
    ignored: list[str] = []
    for k, tr in enumerate(found):
        t_next = found[k + 1].t_start if k + 1 < len(found) else end
        if _on_level(tr.f_from) and _on_level(tr.f_to):
            steps.append(LegacyStep(tr.t_start, t_next, tr.f_from, tr.f_to))
        else:
            ignored.append(f"{tr.f_from:.3f} -> {tr.f_to:.3f} Hz at t={tr.t_start:.1f} s")
    return LegacySteps(tuple(steps), tuple(ignored), tuple(round(h[0], 3) for h in holds_all))


def _legacy(ctx: Context, up: bool, fraction: float, limit_s: float) -> Measurement:
    found = legacy_steps(ctx)
    mine = [st for st in found.steps if (st.units > 0) is up]
    if not mine:
        raise TestSequenceError(
            f"FCR-N legacy: no {'up' if up else 'down'} step found (expected steps of "
            f"±0.1 Hz between 49.9, 50.0 and 50.1 Hz, in any order); applied frequency "
            f"holds at {list(found.holds)}"
            + (f", ignored {', '.join(found.ignored)}" if found.ignored else "")
        )
    dp_ss = ctx.dp_ss("FCR-N legacy steps")
    times: list[float] = []
    parts: list[str] = []
    hold = LEGACY_MEAN_S if ctx.params.full_mean_s is None else ctx.params.full_mean_s
    for st in mine:
        sign = 1.0 if up else -1.0
        dp = sign * (ctx.response() - ctx.pre_level(st.t_step, f"step at t={st.t_step:.1f} s"))
        level = fraction * abs(st.units) * dp_ss
        t_hit = reach_held(ctx.series, dp, level, st.t_step, st.t_next, hold_s=hold)
        times.append(t_hit - st.t_step)
        took = "never" if np.isnan(t_hit) else f"{t_hit - st.t_step:.1f} s"
        parts.append(f"{st.f_from:.2f}->{st.f_to:.2f} Hz at t={st.t_step:.1f} s: {took}")
    worst = float("nan") if any(np.isnan(times)) else max(times)
    ignored = f"; ignored {', '.join(found.ignored)}" if found.ignored else ""
    return Measurement(
        worst,
        limit_s,
        "<=",
        f"{fraction:.0%} of ΔP_ss,theo per 0.1 Hz, held {hold:g} s on average; "
        + "; ".join(parts)
        + ignored,
    )


def req1_up(ctx: Context) -> Measurement:
    """ΔP_ss,1 = P_ss,1 - ½(P_ss,0 + P_ss,3); (ΔP_ss,1 - |ΔP|)/|ΔP| in [-0.05, 0.20]."""
    st = step_test(ctx)
    p0, p1, p3 = st.p_ss(ctx, 0), st.p_ss(ctx, 1), st.p_ss(ctx, HOLD_AFTER)
    d = ctx.params.k_red_ss * st.dp_ss
    dp1 = p1 - (p0 + p3) / 2
    return Measurement(
        (dp1 - d) / d,
        -FCR_SS_UNDER_TOLERANCE,
        "between",
        f"P_ss,0={p0:.4f}, P_ss,1={p1:.4f}, P_ss,3={p3:.4f} MW; ΔP_ss,1={dp1:.4f} MW",
        threshold_high=FCR_SS_OVER_TOLERANCE,
    )


def req1_down(ctx: Context) -> Measurement:
    """ΔP_ss,2 = P_ss,2 - ½(P_ss,0 + P_ss,3); (ΔP_ss,2 + |ΔP|)/|ΔP| in [-0.20, 0.05]."""
    st = step_test(ctx)
    p0, p2, p3 = st.p_ss(ctx, 0), st.p_ss(ctx, 2), st.p_ss(ctx, HOLD_AFTER)
    d = ctx.params.k_red_ss * st.dp_ss
    dp2 = p2 - (p0 + p3) / 2
    return Measurement(
        (dp2 + d) / d,
        -FCR_SS_OVER_TOLERANCE,
        "between",
        f"P_ss,0={p0:.4f}, P_ss,2={p2:.4f}, P_ss,3={p3:.4f} MW; ΔP_ss,2={dp2:.4f} MW",
        threshold_high=FCR_SS_UNDER_TOLERANCE,
    )


def _rule(rid: str, version: str, text: str, ref: str, unit: str, *, fn: Evaluator) -> Rule:
    return Rule(
        rule_id=f"FCRN.{rid}",
        product=Product.FCR_N,
        test_types=frozenset({TestType.STEP}),
        version=version,
        requirement=text,
        reference=ref,
        unit=unit,
        evaluate=fn,
        sampling=FCRN_TEST_RATE,
    )


def _pct(fraction: float) -> str:
    """A fraction as a percentage for rule ids and texts (0.63 -> "63")."""
    return f"{fraction * 100:g}"


def _legacy_rules() -> list[Rule]:
    ramp = _pct(FCRN_LEGACY_RAMP_FRACTION)
    full_min = f"{FCRN_LEGACY_FULL_S / 60:g}"
    out = []
    for up, direction in ((True, "UP"), (False, "DOWN")):
        # (id part, fraction, time limit, text)
        for fraction_name, fraction, limit, label in (
            (
                ramp,
                FCRN_LEGACY_RAMP_FRACTION,
                FCRN_LEGACY_RAMP_S,
                f"{ramp} % within {FCRN_LEGACY_RAMP_S:g} s",
            ),
            ("100", 1.0, FCRN_LEGACY_FULL_S, f"100 % within {full_min} min"),
        ):

            def fn(
                ctx: Context,
                up: bool = up,
                fraction: float = fraction,
                limit: float = limit,
            ) -> Measurement:
                return _legacy(ctx, up, fraction, limit)

            out.append(
                _rule(
                    f"LEGACY.{direction}.{fraction_name}PCT_{int(limit)}S",
                    SVK_LEGACY,
                    f"{label} after every {direction.lower()} step (±0.1 Hz, any order)",
                    "SvK FCR-N page",
                    "s",
                    fn=fn,
                )
            )
    return out


_UNDER, _OVER = _pct(FCR_SS_UNDER_TOLERANCE), _pct(FCR_SS_OVER_TOLERANCE)
RULES: tuple[Rule, ...] = (
    _rule(
        "REQ1.SS_UP",
        TR25,
        f"steady-state up response within -{_UNDER} %/+{_OVER} % of ΔP_ss,theo",
        "TR25 §3.1.1 Req 1",
        "fraction",
        fn=req1_up,
    ),
    _rule(
        "REQ1.SS_DOWN",
        TR25,
        f"steady-state down response within -{_OVER} %/+{_UNDER} % of ΔP_ss,theo",
        "TR25 §3.1.1 Req 1",
        "fraction",
        fn=req1_down,
    ),
    *_legacy_rules(),
)
