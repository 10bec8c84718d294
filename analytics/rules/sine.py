"""Sine tests: Req 10 linearity per period as a rule; the whole set via :func:`judge_sine_set`.

One record (one SvK file) holds one period, so per-record rules can only judge that period;
Req 8 (Nyquist stability), Req 9 (performance) and the K_red,dyn Req 9 needs (against the
product minimum) need every period of the test and are judged by :func:`judge_sine_set`
with the same fit (:func:`analytics.freqresp.fit_period`).

Never dropped: when a period cannot be fitted, or fewer than two periods are available,
Req 8, Req 9 and the K_red,dyn check still come back, as errors naming why (and, where at
least two periods were fitted, what those periods give).

Test signal (TR25 §5): with an internal (software) signal, F is multiplied by the
frequency-measurement dynamics F_FME = 1/(T_FME·s + 1) (T_FME default 1 s, the TSO
default); with an external signal generator, not. A CSV file cannot say which was used:
``signal`` states it; when it is unknown both readings are judged, the stricter decides
each requirement and the other is shown beside it (``other_reading``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from analytics.freqresp import (
    STABILITY_MARGIN,
    T_FME_DEFAULT_S,
    PeriodFit,
    fit_period,
    k_red_check,
    linearity_check,
    performance_check,
    stability_check,
)
from analytics.rules.base import TR25, Context, Measurement, MissingParameterError, Rule
from analytics.timeseries import FCRD_TEST_RATE, FCRN_TEST_RATE, Series, SeriesError
from analytics.verdicts import TestType, Verdict
from contract.enums import Product
from contract.products import rule_tag

FCR = (Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN)


class TestSignal(enum.StrEnum):
    """How the sine test's frequency was applied (TR25 §5)."""

    __test__ = False  # not a pytest class

    INTERNAL = "internal"  # software signal inside the controller: F·F_FME
    EXTERNAL = "external"  # external signal generator: F as measured
    UNKNOWN = "unknown"  # not stated: both readings, the stricter decides


def method_line(signal: TestSignal, t_fme_s: float) -> str:
    """The report's Method line for the sine tests' test-signal option."""
    if signal is TestSignal.INTERNAL:
        how = f"internal test signal: F multiplied by F_FME = 1/({t_fme_s:g} s·jω + 1)"
    elif signal is TestSignal.EXTERNAL:
        how = "external signal generator: F as measured (no F_FME)"
    else:
        how = (
            f"test signal not stated: Req 8/9 judged with F_FME (T_FME {t_fme_s:g} s, "
            "internal signal) and without (external generator); the stricter decides, the "
            "other is shown beside"
        )
    default = f"{T_FME_DEFAULT_S:g} s = {T_FME_DEFAULT_S.source}"
    return f"Sine tests (TR25 §5): {how}; T_FME default {default}."


def period_fit(ctx: Context) -> PeriodFit:
    return ctx.cached("sine.fit", _build_fit)


def _build_fit(ctx: Context) -> PeriodFit:
    if ctx.params.period_s is None:
        raise MissingParameterError("period_s", "sine test", "the SvK file name carries it")
    return fit_period(
        ctx.series,
        ctx.params.period_s,
        ctx.product,
        ctx.dp_ss("sine test"),
        t_fme_s=ctx.params.t_fme_s,
    )


def linearity(ctx: Context) -> Measurement:
    v = linearity_check(period_fit(ctx), ctx.product)
    fit = period_fit(ctx)
    return Measurement(
        v.measured,
        v.threshold,
        "<=",
        f"{v.detail}; fitted t={fit.t_start:.1f}-{fit.t_end:.1f} s; |F|={fit.gain:.4f}, "
        f"φ={fit.phase_deg:.2f}°",
    )


@dataclass(frozen=True)
class SineSetResult:
    """Fits (as judged by the deciding reading), verdicts, and (rule id, error) pairs."""

    fits: list[PeriodFit]
    verdicts: list[Verdict]
    errors: list[tuple[str, str]] = field(default_factory=list)


def set_rule_ids(product: Product) -> tuple[str, str, str]:
    """The set-level rules: Req 8, Req 9 and the K_red,dyn check."""
    tag = rule_tag(product)
    return (f"{tag}.REQ8.NYQUIST", f"{tag}.REQ9.PERFORMANCE", f"{tag}.REQ9.K_RED_DYN")


def _status(v: Verdict) -> str:
    return f"{'PASS' if v.passed else 'FAIL'} ({v.measured:.4g})"


def _stricter(
    internal: Verdict, external: Verdict, worse: Callable[[float, float], bool], t_fme_s: float
) -> Verdict:
    """The reading that judges worse, the other beside it."""
    if worse(external.measured, internal.measured):
        return replace(
            external,
            other_reading=f"internal signal (F_FME, T_FME {t_fme_s:g} s): {_status(internal)}",
            detail=external.detail + "; external-generator reading (stricter here)",
        )
    return replace(
        internal,
        other_reading=f"external generator (no F_FME): {_status(external)}",
        detail=internal.detail + f"; internal-signal reading, T_FME {t_fme_s:g} s (stricter here)",
    )


def _set_verdicts(
    fits: list[PeriodFit],
    product: Product,
    *,
    signal: TestSignal,
    t_fme_s: float,
    margin: float,
    k_red_dyn: float,
) -> list[Verdict]:
    def judged(use: list[PeriodFit]) -> list[Verdict]:
        return [
            stability_check(use, product, margin=margin),
            performance_check(use, product, k_red_dyn=k_red_dyn),
            k_red_check(use, product),
        ]

    with_fme = [f.with_fme(t_fme_s) for f in fits]
    if signal is TestSignal.INTERNAL:
        return judged(with_fme)
    if signal is TestSignal.EXTERNAL:
        return judged(fits)
    inner, outer = judged(with_fme), judged(fits)
    return [
        _stricter(inner[0], outer[0], lambda a, b: a < b, t_fme_s),  # Req 8: distance
        _stricter(inner[1], outer[1], lambda a, b: a > b, t_fme_s),  # Req 9: ratio
        _stricter(inner[2], outer[2], lambda a, b: a < b, t_fme_s),  # K_red,dyn needed
    ]


def judge_sine_set(
    records: Mapping[float, Series],
    product: Product,
    dp_ss_mw: float,
    *,
    signal: TestSignal = TestSignal.UNKNOWN,
    t_fme_s: float = T_FME_DEFAULT_S,
    margin: float = STABILITY_MARGIN,
    k_red_dyn: float = 1.0,
) -> SineSetResult:
    """Fit every period (period_s -> series), judge Req 10 per period, then Req 8, Req 9 and
    the K_red,dyn check over the set (module doc: never dropped, test-signal readings)."""
    fits: list[PeriodFit] = []
    failed: list[str] = []
    verdicts: list[Verdict] = []
    for period, series in sorted(records.items()):
        try:
            fit = fit_period(series, period, product, dp_ss_mw)
        except SeriesError as exc:
            failed.append(f"period {period:g} s: {exc}")
            continue
        fits.append(fit)
        verdicts.append(linearity_check(fit, product))
    rule_ids = set_rule_ids(product)
    if len(fits) < 2:
        why = f"needs >= 2 fitted sine periods, got {len(fits)} of {len(records)}"
        why += "".join(f"; {f}" for f in failed)
        return SineSetResult(fits, verdicts, [(rid, why) for rid in rule_ids])
    judged = _set_verdicts(
        fits, product, signal=signal, t_fme_s=t_fme_s, margin=margin, k_red_dyn=k_red_dyn
    )
    if failed:
        errors = [
            (
                v.rule_id,
                "not every period could be fitted (" + "; ".join(failed) + "); over the "
                f"{len(fits)} fitted periods: {_status(v)}",
            )
            for v in judged
        ]
        return SineSetResult(fits, verdicts, errors)
    deciding = fits
    if signal is TestSignal.INTERNAL or (
        signal is TestSignal.UNKNOWN and "internal-signal" in judged[0].detail
    ):
        deciding = [f.with_fme(t_fme_s) for f in fits]
    return SineSetResult(deciding, verdicts + judged)


RULES: tuple[Rule, ...] = tuple(
    Rule(
        rule_id=f"{rule_tag(p)}.REQ10.LINEARITY",
        product=p,
        test_types=frozenset({TestType.SINE}),
        version=TR25,
        requirement="normalised RMSE of the fitted sine < 1",
        reference="TR25 §3.4.1 Req 10",
        unit="ratio",
        evaluate=linearity,
        sampling=FCRN_TEST_RATE if p is Product.FCR_N else FCRD_TEST_RATE,
    )
    for p in FCR
)
