"""Sine tests: Req 10 linearity per period as a rule; the whole set via :func:`judge_sine_set`.

One record (one SvK file) holds one period, so per-record rules can only judge that period;
Req 8 (Nyquist stability) and Req 9 (performance) need every period of the test and are
judged by :func:`judge_sine_set` with the same fit (:func:`analytics.freqresp.fit_period`).
"""

from __future__ import annotations

from collections.abc import Mapping

from analytics.freqresp import (
    PeriodFit,
    fit_period,
    linearity_check,
    performance_check,
    stability_check,
)
from analytics.rules.base import TR25, Context, Measurement, MissingParameterError, Rule
from analytics.timeseries import FCRD_TEST_RATE, FCRN_TEST_RATE, Series
from analytics.verdicts import Product, TestType, Verdict

FCR = (Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN)


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
        f"{v.detail}; |F|={fit.gain:.4f}, φ={fit.phase_deg:.2f}°",
    )


def judge_sine_set(
    records: Mapping[float, Series],
    product: Product,
    dp_ss_mw: float,
    *,
    t_fme_s: float | None = None,
    margin: float = 0.95,
) -> tuple[list[PeriodFit], list[Verdict]]:
    """Fit every period (period_s -> series) and judge Req 10 per period, then Req 8 and 9."""
    fits = [
        fit_period(series, period, product, dp_ss_mw, t_fme_s=t_fme_s)
        for period, series in sorted(records.items())
    ]
    verdicts = [linearity_check(fit, product) for fit in fits]
    verdicts += [stability_check(fits, product, margin=margin), performance_check(fits, product)]
    return fits, verdicts


RULES: tuple[Rule, ...] = tuple(
    Rule(
        rule_id=f"{p.tag}.REQ10.LINEARITY",
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
