"""FCR-N step test (TR25 §3.1.1, sequence TR25 Table 3) and the legacy SvK figures.

Steps are located from the applied frequency: the holds at 50.0 Hz (P_ss,0), 49.9 Hz
(P_ss,1), 50.1 Hz (P_ss,2) and 50.0 Hz again (P_ss,3), in that order (the 49.95 Hz backlash
pre-step may precede them), unless ``step_bounds_s`` gives the five boundaries.

P_ss,k is the time-weighted mean response over the hold from its start + ``ss_settle_s``
(default 240 s, i.e. the last minute of a 5-min step) to its end - ``ss_trim_s`` (2 s).
TR25 gives no averaging window; the default follows its note that FCR-N "may wait up to
4 min for steady state".

Legacy (SvK FCR-N page, SVK-LEGACY): 63 % within 60 s and 100 % within 3 min of a step,
judged on step 1 (50.0 -> 49.9 Hz, target +|ΔP_ss,theo| from the pre-step level) and on
step 2 (49.9 -> 50.1 Hz, target -2·|ΔP_ss,theo| from the pre-step level). "100 %" means
``full_fraction`` (default 95 %) of the target.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.rules.base import (
    SVK_LEGACY,
    TR25,
    Context,
    Evaluator,
    Measurement,
    Rule,
    TestSequenceError,
)
from analytics.rules.segments import find_transitions
from analytics.timeseries import FCRN_TEST_RATE
from analytics.verdicts import Product, TestType
from contract.products import (
    FCR_SS_OVER_TOLERANCE,
    FCR_SS_UNDER_TOLERANCE,
    FCRN_FULL_DOWN_HZ,
    FCRN_FULL_UP_HZ,
    FCRN_LEGACY_FULL_S,
    FCRN_LEGACY_RAMP_FRACTION,
    FCRN_LEGACY_RAMP_S,
    NOMINAL_HZ,
)

# steps 0..3 (TR25 Table 3): nominal, full up, full down, nominal
LEVELS_HZ = (NOMINAL_HZ, FCRN_FULL_UP_HZ, FCRN_FULL_DOWN_HZ, NOMINAL_HZ)
LEVEL_TOL_HZ = 0.01


@dataclass(frozen=True)
class StepTest:
    """Bounds [start, end] of holds 0..3 and |ΔP_ss,theo| (MW)."""

    holds: tuple[tuple[float, float], ...]
    dp_ss: float

    def p_ss(self, ctx: Context, k: int) -> float:
        settle = 240.0 if ctx.params.ss_settle_s is None else ctx.params.ss_settle_s
        trim = 2.0 if ctx.params.ss_trim_s is None else ctx.params.ss_trim_s
        start, end = self.holds[k]
        return ctx.series.mean(ctx.response(), start + settle, end - trim, f"P_ss,{k}")


def step_test(ctx: Context) -> StepTest:
    return ctx.cached("fcrn.steps", _build_step_test)


def _build_step_test(ctx: Context) -> StepTest:
    bounds = ctx.params.step_bounds_s
    if bounds is not None:
        if len(bounds) != 5:
            raise TestSequenceError(f"step_bounds_s needs 5 times, got {len(bounds)}")
        holds = tuple((bounds[k], bounds[k + 1]) for k in range(4))
        return StepTest(holds=holds, dp_ss=ctx.dp_ss("FCR-N step test"))
    series = ctx.series
    found = find_transitions(series.t, series.frequency("FCR-N step detection"))
    # Holds: (level, start, end) between consecutive transitions.
    holds_all: list[tuple[float, float, float]] = []
    start, level = float(series.t[0]), found[0].f_from if found else float("nan")
    for tr in found:
        holds_all.append((level, start, tr.t_start))
        start, level = tr.t_end, tr.f_to
    holds_all.append((level, start, float(series.t[-1])))
    for i in range(len(holds_all) - 3):
        window = holds_all[i : i + 4]
        if all(abs(h[0] - want) <= LEVEL_TOL_HZ for h, want in zip(window, LEVELS_HZ, strict=True)):
            return StepTest(
                holds=tuple((h[1], h[2]) for h in window), dp_ss=ctx.dp_ss("FCR-N step test")
            )
    seen = [round(h[0], 3) for h in holds_all]
    raise TestSequenceError(
        f"FCR-N step test needs holds at 50.0, 49.9, 50.1, 50.0 Hz in order (TR25 Table 3); "
        f"applied frequency holds at {seen}"
    )


def req1_up(ctx: Context) -> Measurement:
    """ΔP_ss,1 = P_ss,1 - ½(P_ss,0 + P_ss,3); (ΔP_ss,1 - |ΔP|)/|ΔP| in [-0.05, 0.20]."""
    st = step_test(ctx)
    p0, p1, p3 = st.p_ss(ctx, 0), st.p_ss(ctx, 1), st.p_ss(ctx, 3)
    d = ctx.params.k_red_ss * st.dp_ss
    dp1 = p1 - 0.5 * (p0 + p3)
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
    p0, p2, p3 = st.p_ss(ctx, 0), st.p_ss(ctx, 2), st.p_ss(ctx, 3)
    d = ctx.params.k_red_ss * st.dp_ss
    dp2 = p2 - 0.5 * (p0 + p3)
    return Measurement(
        (dp2 + d) / d,
        -FCR_SS_OVER_TOLERANCE,
        "between",
        f"P_ss,0={p0:.4f}, P_ss,2={p2:.4f}, P_ss,3={p3:.4f} MW; ΔP_ss,2={dp2:.4f} MW",
        threshold_high=FCR_SS_UNDER_TOLERANCE,
    )


def _legacy(ctx: Context, step: int, fraction: float, limit_s: float) -> Measurement:
    st = step_test(ctx)
    t_step, t_next = st.holds[step]
    sign, size = (1, 1.0) if step == 1 else (-1, 2.0)
    dp = sign * (ctx.response() - ctx.pre_level(t_step, f"step {step}"))
    t_hit = ctx.series.first_reach(dp, fraction * size * st.dp_ss, t_step, t_next)
    return Measurement(
        t_hit - t_step,
        limit_s,
        "<=",
        f"step {step} at t={t_step:.2f} s, target {fraction:.0%} of {sign * size:+.0f}·ΔP_ss",
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
    for step, direction in ((1, "UP"), (2, "DOWN")):
        # (id part, fraction (None: the full_fraction parameter), time limit, text)
        for fraction_name, fixed, limit, label in (
            (
                ramp,
                FCRN_LEGACY_RAMP_FRACTION,
                FCRN_LEGACY_RAMP_S,
                f"{ramp} % within {FCRN_LEGACY_RAMP_S:g} s",
            ),
            ("100", None, FCRN_LEGACY_FULL_S, f"100 % within {full_min} min"),
        ):

            def fn(
                ctx: Context,
                step: int = step,
                fixed: float | None = fixed,
                limit: float = limit,
            ) -> Measurement:
                fraction = ctx.params.full_fraction if fixed is None else fixed
                return _legacy(ctx, step, fraction, limit)

            out.append(
                _rule(
                    f"LEGACY.{direction}.{fraction_name}PCT_{int(limit)}S",
                    SVK_LEGACY,
                    f"{label} after the {direction.lower()} step",
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
