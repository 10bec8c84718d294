"""Frequency response of the dispatch chain: sine-test fits, TR25 Req 8/9/10, FOPDT fits.

Sine tests (TR25 §2.3, eqs 6-9). For one period T, a least-squares sine of that period
(plus offset and linear trend, i.e. baseline removed) is fitted to the test frequency and
to the response power over whole stationary periods. With ω = 2π/T:

    |F(jω)| = (A_P / A_f) · (|Δf_FCR-X| / |ΔP_ss,theo|)     Δf = 0.1 Hz (N) / 0.4 Hz (D)
    φ(ω)    = phase of P minus phase of (-f)                 negative when power lags

so an ideal droop (power follows -Δf without delay) gives F = 1∠0. TR25 writes φ from the
peak times, φ = (t_peak,f - t_peak,P)·360°/T, with the frequency peak taken in the
activating direction; the fitted phases give the same number without picking peaks. With
an internal test signal, F is multiplied by F_FME(jω) = 1/(T_FME·jω + 1) (TR25 §5: T_FME
from a test, the supplier or previous tests, else the TSO default 1 s).

Which data: the periods are fitted inside the part of the record where the applied
frequency oscillates (:func:`stationary_span`), not at the end of the file: a record may
hold steady logging before and after the sine. Over every one-period window (a whole
number of samples, ``round(T/interval)``) the sine of period T is fitted by complex
demodulation; a window lies inside the sine when the fitted sine explains the window
(residual below :data:`OSC_RESIDUAL_SHARE` of its amplitude) and its amplitude is within
:data:`OSC_AMPLITUDE_SHARE` of the largest such amplitude (and at least the frequency's
5 mHz resolution). The longest run of such windows is the oscillating part, roughly; a sine
fitted over it then sets its first and last sample exactly: the run of samples that follow
that sine within the ±10 mHz accuracy of the applied frequency. Its length in whole periods
is samples x interval (a file of exactly 3 x 300 s at 10 Hz holds 3 periods, not 2). The
first period is left to settle and the last 2-5 whole periods (TR25: 2-5 stationary
periods) ending where the oscillation ends are fitted.

Stability (Req 8, eqs 10-11, Table 7): G0(jω) = F(jω)·G(jω) with the grid model
G = (ΔP_FCR-X/Δf_FCR-X)·(f0/S_n)/(2H·jω + K_f·f0). The Nyquist curve (|F| and φ
interpolated linearly in log ω between tested periods) must stay outside the circle of
radius 0.43 around -1 (95 % margin accepted: 0.4085; FCR-N may be granted 75 %).
Sign: the converted TR25 text writes G0 = -F·G (facts §2.4, UNCERTAIN); that form belongs to
F defined from +Δf to +ΔP, whose ideal value is -1. With F normalised as above (ideal = +1)
the same loop is 1 + F·G, so G0 = F·G: both readings give the same curve. Mixing them
(G0 = -F·G with the normalised F) puts an ideal droop's G0 at about -26 at low frequency,
left of -1, i.e. it would fail every resource, an ideal one included: not a reading a TSO
can apply, so no result is shown for it. ``sign`` lets an auditor flip it if the original
PDF says otherwise.

Performance (Req 9, §3.3): K_margin·|G_perf/(1 + F·G_perf)|·|D(jω)| <= 1 with
D(s) = 1/(70 s + 1), K_margin = 0.95, on the dense ω grid of the tested range. A failing
resource may apply a reduction factor, F/K_red,dyn inside the loop; the largest K that
passes is the K_red,dyn needed, which must not fall below the product's minimum (FCR-N 0.9,
FCR-D 0.75: :func:`k_red_check`).

Linearity (Req 10, §3.4.1): sqrt(Σ(P - P_est)²)/sqrt(Σ(P_est - mean P_est)²) < 1.

Step responses: :func:`fit_fopdt_step` fits gain·e^(-Ls)/(τs + 1) to a step response by
Levenberg-Marquardt, started from Smith's two-point (28.3 %/63.2 %) estimate (a diagnostic
of the dispatch chain, no requirement).
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from analytics.delivered import delivered_mw
from analytics.timeseries import FloatArray, InsufficientDataError, Series
from analytics.verdicts import Verdict
from contract.enums import Product
from contract.products import (
    FCRD_BAND_HZ,
    FCRD_K_RED_DYN_MIN,
    FCRN_BAND_HZ,
    FCRN_K_RED_DYN_MIN,
    NOMINAL_HZ,
    CitedInt,
    cite,
    rule_tag,
)

FULL_BAND_HZ = {Product.FCR_N: FCRN_BAND_HZ, Product.FCR_D_UP: FCRD_BAND_HZ,
                Product.FCR_D_DOWN: FCRD_BAND_HZ}  # fmt: skip
K_RED_DYN_MIN = {Product.FCR_N: FCRN_K_RED_DYN_MIN, Product.FCR_D_UP: FCRD_K_RED_DYN_MIN,
                 Product.FCR_D_DOWN: FCRD_K_RED_DYN_MIN}  # fmt: skip
STABILITY_RADIUS = cite(0.43, "[TR25 §3.2] Req 8: circle of radius 0.43 around -1")
STABILITY_MARGIN = cite(0.95, "[TR25 §3.2] a 95 % margin is accepted (radius 0.4085)")
PERF_TIME_CONSTANT_S = cite(70.0, "[TR25 §3.3] disturbance profile D(s) = 1/(70 s + 1)")
K_MARGIN = cite(0.95, "[TR25 §3.3] Req 9 K_margin = 0.95")
#: TSO default frequency-measurement time constant for an internal test signal.
T_FME_DEFAULT_S = cite(1.0, "[TR25 §5] TSO default T_FME = 1 s (deliberately conservative)")
#: Stationary periods fitted per sine period.
MIN_STATIONARY = CitedInt(2, "[TR25 §3.2 eqs 6-9] evaluation on 2-5 stationary periods")
MAX_STATIONARY = CitedInt(5, "[TR25 §3.2 eqs 6-9] evaluation on 2-5 stationary periods")
SETTLING_PERIODS = CitedInt(
    1, "FlowerHub: one period before the stationary ones ([TR25 Table 6]: 300 s = 2 of 3)"
)
#: A one-period window is inside the sine when the fitted sine leaves a residual below this
#: share of its amplitude ...
OSC_RESIDUAL_SHARE = cite(
    0.1, "FlowerHub: >= 99 % of the window's variance is the sine of the tested period"
)
#: ... and its amplitude is within this share of the largest such amplitude.
OSC_AMPLITUDE_SHARE = cite(
    0.99, "FlowerHub: at most ~1 % of a period of steady logging inside a fitted window"
)
#: ... and at least this (the applied frequency's resolution; a flat record has none).
OSC_MIN_AMPLITUDE_HZ = cite(0.005, "[TR25 §4.1 Table 16] applied frequency resolution 5 mHz")
#: The oscillation's first and last samples: those following the fitted sine within this.
OSC_SAMPLE_TOL_HZ = cite(0.01, "[TR25 §4.1 Table 16] applied frequency accuracy ±10 mHz")
#: A period needs this many samples at least to fit a sine to it.
MIN_SAMPLES_PER_PERIOD = CitedInt(4, "FlowerHub: twice the Nyquist minimum of 2 per period")
#: Interpolation grid (points) of the Nyquist / performance curves between tested periods.
CURVE_POINTS = CitedInt(400, "FlowerHub: dense log-ω grid between the tested periods")
#: Bisection steps for the K_red,dyn needed (resolution 2^-40).
K_RED_STEPS = CitedInt(40, "FlowerHub: bisection to 2^-40, far below the 3 decimals printed")
TR25 = "TR-2025-03-28"
ComplexArray = npt.NDArray[np.complex128]

_T7 = "[TR25 Table 7]"


@dataclass(frozen=True)
class GridModel:
    """TR25 Table 7 power-system model for one product and purpose."""

    dp_mw: float
    df_hz: float
    s_n_mw: float
    h_s: float
    f0_hz: float = NOMINAL_HZ
    k_f: float = cite(0.01, _T7 + " K_f = 0.01 p.u./Hz")  # listed as GridModel.k_f

    def __call__(self, w: FloatArray) -> ComplexArray:
        s = (1j * w).astype(np.complex128)
        out: ComplexArray = (
            (self.dp_mw / self.df_hz)
            * (self.f0_hz / self.s_n_mw)
            / (2 * self.h_s * s + self.k_f * self.f0_hz)
        )
        return out


_DP_N = cite(600.0, _T7 + " ΔP_FCR-N = 600 MW")
_DP_D = cite(1450.0, _T7 + " ΔP_FCR-D = 1450 MW")
_SN_STAB = cite(23_000.0, _T7 + " stability S_n = 23 000 MW")
_SN_PERF = cite(42_000.0, _T7 + " performance S_n = 42 000 MW")
_EK_STAB = cite(120_000.0, _T7 + " stability kinetic energy 120 000 MWs (H = 120 000/S_n)")
_EK_PERF = cite(190_000.0, _T7 + " performance kinetic energy 190 000 MWs (H = 190 000/S_n)")


def grid_model(product: Product, purpose: str) -> GridModel:
    """``purpose`` is "stability" (S_n 23 000 MW) or "performance" (S_n 42 000 MW)."""
    dp, df = (_DP_N, FCRN_BAND_HZ) if product is Product.FCR_N else (_DP_D, FCRD_BAND_HZ)
    if purpose == "stability":
        return GridModel(dp, df, _SN_STAB, _EK_STAB / _SN_STAB)
    if purpose == "performance":
        return GridModel(dp, df, _SN_PERF, _EK_PERF / _SN_PERF)
    raise ValueError(f"purpose must be 'stability' or 'performance', got {purpose!r}")


@dataclass(frozen=True)
class SineFit:
    amplitude: float
    phase_rad: float  # y ≈ offset + trend·t + amplitude·sin(ωt + phase)
    offset: float
    nrmse: float  # Req 10 measure: ||y - fit|| / ||fit - mean(fit)||


def _trend(t: FloatArray, y: FloatArray, period_s: float) -> float:
    """The linear trend of :func:`fit_sine`'s model (per second, about the mean time)."""
    w = 2 * math.pi / period_s
    a = np.column_stack([np.sin(w * t), np.cos(w * t), np.ones_like(t), t - t.mean()])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(coef[3])


def fit_sine(t: FloatArray, y: FloatArray, period_s: float) -> SineFit:
    """Least-squares sine of a known period, with offset and linear trend."""
    w = 2 * math.pi / period_s
    tc = t - t.mean()
    a = np.column_stack([np.sin(w * t), np.cos(w * t), np.ones_like(t), tc])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    est = a @ coef
    periodic = a[:, :2] @ coef[:2]
    denom = float(np.sqrt(np.sum((periodic - periodic.mean()) ** 2)))
    nrmse = float(np.sqrt(np.sum((y - est) ** 2))) / denom if denom > 0 else math.inf
    return SineFit(
        float(math.hypot(coef[0], coef[1])),
        float(math.atan2(coef[1], coef[0])),
        float(coef[2]),
        nrmse,
    )


@dataclass(frozen=True)
class PeriodFit:
    """One sine-test period: normalised F(jω) and the linearity measure."""

    period_s: float
    gain: float
    phase_deg: float
    nrmse: float
    periods_used: int
    t_start: float = math.nan
    """Start of the fitted whole periods on the series clock (s)."""
    t_end: float = math.nan

    @property
    def omega(self) -> float:
        return 2 * math.pi / self.period_s

    @property
    def f(self) -> complex:
        return self.gain * cmath.exp(1j * math.radians(self.phase_deg))

    def with_fme(self, t_fme_s: float) -> PeriodFit:
        """F·F_FME: the internal-signal correction 1/(T_FME·jω + 1) (TR25 §5)."""
        value = self.f / (1 + 1j * self.omega * t_fme_s)
        return replace(self, gain=abs(value), phase_deg=math.degrees(cmath.phase(value)))


@dataclass(frozen=True)
class SineSpan:
    """Where the applied frequency oscillates with the tested period (sample indices)."""

    start: int  # first sample of the oscillating part
    stop: int  # one past its last sample
    samples_per_period: int
    interval_s: float

    @property
    def periods(self) -> int:
        return (self.stop - self.start) // self.samples_per_period


def stationary_span(series: Series, period_s: float) -> SineSpan:
    """The part of ``series`` where the frequency is a sine of ``period_s`` (module doc)."""
    f = series.frequency("sine fit")
    t = series.t
    dt = series.interval_s()
    m = round(period_s / dt)
    if m < MIN_SAMPLES_PER_PERIOD or t.size < m:
        raise InsufficientDataError(
            f"sine period {period_s:g} s: needs >= 3 periods of data sampled well below the "
            f"period; got {t.size} samples every {dt:g} s"
        )
    w = 2 * math.pi / period_s
    rot = np.exp(-1j * w * (t - t[0]))
    c_z = np.concatenate(([0], np.cumsum(f * rot)))
    c_e = np.concatenate(([0], np.cumsum(rot)))
    c_f = np.concatenate(([0.0], np.cumsum(f)))
    c_f2 = np.concatenate(([0.0], np.cumsum((f - f.mean()) ** 2)))
    c_g = np.concatenate(([0.0], np.cumsum(f - f.mean())))
    mean = (c_f[m:] - c_f[:-m]) / m
    proj = (c_z[m:] - c_z[:-m]) - mean * (c_e[m:] - c_e[:-m])
    amp = 2 * np.abs(proj) / m
    centred_mean = (c_g[m:] - c_g[:-m]) / m
    var = (c_f2[m:] - c_f2[:-m]) / m - centred_mean**2
    resid = np.sqrt(np.clip(var - amp**2 / 2, 0.0, None))
    fits = (amp >= OSC_MIN_AMPLITUDE_HZ) & (resid <= OSC_RESIDUAL_SHARE * amp)
    if not np.any(fits):
        raise InsufficientDataError(
            f"sine period {period_s:g} s: the frequency does not oscillate with this period "
            f"anywhere in the record ({t[0]:.1f}-{t[-1]:.1f} s)"
        )
    good = fits & (amp >= OSC_AMPLITUDE_SHARE * float(amp[fits].max()))
    idx = np.flatnonzero(good)
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]]))
    k = int(np.argmax(ends - starts))
    lo, hi = int(starts[k]), int(ends[k]) + m
    # the exact ends: the run of samples on the sine fitted over the rough span
    rough = fit_sine(t[lo:hi], f[lo:hi], period_s)
    wt = w * t
    on_sine = rough.offset + rough.amplitude * np.sin(wt + rough.phase_rad)
    trend = _trend(t[lo:hi], f[lo:hi], period_s)
    off = np.abs(f - on_sine - trend * (t - t[lo:hi].mean())) > OSC_SAMPLE_TOL_HZ
    mid = (lo + hi) // 2
    before = np.flatnonzero(off[:mid])
    after = np.flatnonzero(off[mid:])
    start = int(before[-1]) + 1 if before.size else 0
    stop = mid + int(after[0]) if after.size else t.size
    return SineSpan(start, stop, m, dt)


def fit_period(
    series: Series,
    period_s: float,
    product: Product,
    dp_ss_mw: float,
    *,
    t_fme_s: float | None = None,
    max_periods: int = MAX_STATIONARY,
) -> PeriodFit:
    """Fit one sine-test period over the last whole stationary periods of its oscillation."""
    if product not in FULL_BAND_HZ:
        raise ValueError(f"sine tests are for FCR products, got {product}")
    span = stationary_span(series, period_s)
    n = min(max_periods, span.periods - SETTLING_PERIODS)
    if n < MIN_STATIONARY:
        t0, t1 = float(series.t[span.start]), float(series.t[span.stop - 1])
        raise InsufficientDataError(
            f"sine period {period_s:g} s: needs >= 3 periods of data (2 stationary after one "
            f"settling period, TR25 §3.2); the frequency oscillates over {span.periods} whole "
            f"period(s) ({(span.stop - span.start) * span.interval_s:.1f} s = samples x "
            f"interval, t={t0:.1f}-{t1:.1f} s)"
        )
    lo = span.stop - n * span.samples_per_period
    t = series.t[lo : span.stop]
    f = series.frequency("sine fit")[lo : span.stop]
    p = delivered_mw(series, product)[lo : span.stop]
    ff, fp = fit_sine(t, f, period_s), fit_sine(t, p, period_s)
    if ff.amplitude <= 0:
        raise InsufficientDataError(f"sine period {period_s:g} s: the frequency does not oscillate")
    gain = fp.amplitude / ff.amplitude * FULL_BAND_HZ[product] / abs(dp_ss_mw)
    phase = fp.phase_rad - (ff.phase_rad + math.pi)
    value = gain * cmath.exp(1j * phase)
    fit = PeriodFit(
        period_s,
        abs(value),
        math.degrees(cmath.phase(value)),
        fp.nrmse,
        n,
        float(t[0]),
        float(t[-1]) + span.interval_s,
    )
    return fit if t_fme_s is None else fit.with_fme(t_fme_s)


def interpolate(
    fits: Sequence[PeriodFit], points: int = CURVE_POINTS
) -> tuple[FloatArray, ComplexArray]:
    """Dense ω grid over the tested range and F on it (|F| and unwrapped φ linear in log ω)."""
    if len(fits) < 2:
        raise InsufficientDataError("Nyquist/performance checks need >= 2 sine periods")
    ordered = sorted(fits, key=lambda x: x.omega)
    w = np.array([x.omega for x in ordered])
    gains = np.array([x.gain for x in ordered])
    phases = np.unwrap(np.radians([x.phase_deg for x in ordered]))
    dense = np.geomspace(w[0], w[-1], points)
    lw = np.log(dense)
    f = np.interp(lw, np.log(w), gains) * np.exp(1j * np.interp(lw, np.log(w), phases))
    return dense, f


def stability_check(
    fits: Sequence[PeriodFit],
    product: Product,
    *,
    margin: float = STABILITY_MARGIN,
    sign: int = 1,
) -> Verdict:
    """Req 8: signed distance of the Nyquist curve from -1 against 0.43·margin.

    The measured value is the smallest |G0 + 1| on the interpolated curve, made negative
    when the closed Nyquist contour encircles -1 (the curve passes on the wrong side).
    """
    w, f = interpolate(fits)
    model = grid_model(product, "stability")
    g0 = sign * f * model(w)
    dist = np.abs(g0 + 1)
    # Close the curve as the Nyquist contour does: from ω -> 0 (F held at the longest tested
    # period, G real) along the tested range to ω -> ∞ (G0 -> 0), then the mirror image.
    # A non-zero winding number around -1 means the curve passes on the wrong side.
    dc = sign * f[0] * model(np.array([0.0]))[0]
    half = np.concatenate(([dc], g0, [0.0]))
    contour = np.concatenate((half, np.conj(half[::-1]))) + 1
    turns = np.angle(contour[1:] / contour[:-1]).sum() / (2 * math.pi)
    left = round(float(turns)) != 0
    measured = float(dist.min()) * (-1 if left else 1)
    return Verdict.compare(
        rule_id=f"{rule_tag(product)}.REQ8.NYQUIST",
        rule_version=TR25,
        product=product,
        requirement=f"Nyquist curve outside the {STABILITY_RADIUS:g} circle around -1",
        reference="TR25 §3.2 Req 8, eqs 10-11, Table 7",
        measured=measured,
        threshold=STABILITY_RADIUS * margin,
        unit="p.u.",
        comparison=">=",
        detail=f"margin {margin:.0%}; closest at T={2 * math.pi / w[int(dist.argmin())]:.1f} s"
        + ("; passes left of -1" if left else ""),
    )


def performance_ratio(w: FloatArray, f: ComplexArray, product: Product) -> FloatArray:
    g = grid_model(product, "performance")(w)
    d = 1 / (PERF_TIME_CONSTANT_S * 1j * w + 1)
    ratio: FloatArray = K_MARGIN * np.abs(g / (1 + f * g)) * np.abs(d)
    return ratio


def k_red_needed(w: FloatArray, f: ComplexArray, product: Product) -> float:
    """The largest K in (0, 1] with Req 9 passing for F/K (bisection); 0 if none."""
    if performance_ratio(w, f, product).max() <= 1:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(K_RED_STEPS):
        mid = (lo + hi) / 2
        ok = mid > 0 and performance_ratio(w, f / mid, product).max() <= 1
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo


def performance_check(
    fits: Sequence[PeriodFit], product: Product, *, k_red_dyn: float = 1.0
) -> Verdict:
    """Req 9: max over ω of K_margin·|G/(1 + (F/K)·G)|·|D| <= 1, K = ``k_red_dyn``.

    The detail gives the K_red,dyn needed; :func:`k_red_check` judges it.
    """
    w, f = interpolate(fits)
    worst = float(performance_ratio(w, f / k_red_dyn, product).max())
    k_red = k_red_needed(w, f, product)
    return Verdict.compare(
        rule_id=f"{rule_tag(product)}.REQ9.PERFORMANCE",
        rule_version=TR25,
        product=product,
        requirement="K_margin·|G/(1+FG)| < |1/D|, D = 1/(70s+1)",
        reference="TR25 §3.3 Req 9",
        measured=worst,
        threshold=1.0,
        unit="ratio",
        comparison="<=",
        detail=f"K_margin {K_MARGIN}; judged with K_red,dyn {k_red_dyn:g}; "
        f"K_red,dyn needed {k_red:.3f}",
    )


def k_red_check(fits: Sequence[PeriodFit], product: Product) -> Verdict:
    """Req 9 with reduction: the K_red,dyn needed >= the product minimum (0.9 / 0.75)."""
    w, f = interpolate(fits)
    k_red = k_red_needed(w, f, product)
    minimum = K_RED_DYN_MIN[product]
    return Verdict.compare(
        rule_id=f"{rule_tag(product)}.REQ9.K_RED_DYN",
        rule_version=TR25,
        product=product,
        requirement=f"K_red,dyn needed for Req 9 >= {minimum:g} (product minimum)",
        reference="TR25 §3.3 Req 9; §3.1.2 reduction factors",
        measured=k_red,
        threshold=minimum,
        unit="factor",
        comparison=">=",
        detail=f"capacity reduced by min(K_red,ss, K_red,dyn); minimum {minimum.source}",
    )


def linearity_check(fit: PeriodFit, product: Product) -> Verdict:
    """Req 10 for one period: normalised RMSE of the sine fit < 1."""
    return Verdict.compare(
        rule_id=f"{rule_tag(product)}.REQ10.LINEARITY",
        rule_version=TR25,
        product=product,
        requirement="normalised RMSE of the fitted sine < 1",
        reference="TR25 §3.4.1 Req 10",
        measured=fit.nrmse,
        threshold=1.0,
        unit="ratio",
        comparison="<=",
        detail=f"period {fit.period_s:g} s, {fit.periods_used} periods",
    )


# ---------------------------------------------------------------- FOPDT from a step
@dataclass(frozen=True)
class FopdtFit:
    gain: float  # Δy per Δu
    tau_s: float
    dead_time_s: float
    rmse: float


def _fopdt_step(t: FloatArray, k: float, tau: float, dead: float) -> FloatArray:
    x = np.clip(t - dead, 0.0, None)
    out: FloatArray = k * (1 - np.exp(-x / max(tau, 1e-6)))
    return out


def fit_fopdt_step(
    t: FloatArray, y: FloatArray, t_step: float, du: float = 1.0, *, pre_s: float = 10.0
) -> FopdtFit:
    """Fit y = y0 + K·du·(1 - e^(-(t - t_step - L)/τ)) for t > t_step + L."""
    pre = (t < t_step) & (t >= t_step - pre_s)
    if not np.any(pre):
        raise InsufficientDataError("FOPDT fit needs samples before the step")
    y0 = float(np.mean(y[pre]))
    after = t >= t_step
    tt, yy = t[after] - t_step, (y[after] - y0) / du
    if tt.size < 10:
        raise InsufficientDataError("FOPDT fit needs >= 10 samples after the step")
    tail = yy[tt >= tt[-1] - 0.1 * (tt[-1] - tt[0])]
    k = float(np.mean(tail))
    if k == 0:
        raise InsufficientDataError("FOPDT fit: no response to the step")
    norm = yy / k
    t28 = float(np.interp(0.283, np.maximum.accumulate(norm), tt))
    t63 = float(np.interp(0.632, np.maximum.accumulate(norm), tt))
    tau = max(1.5 * (t63 - t28), 1e-3)
    p = np.array([k, tau, max(t63 - tau, 0.0)])
    lam = 1e-3

    def cost(q: FloatArray) -> float:
        return float(np.sum((_fopdt_step(tt, *q) - yy) ** 2))

    current = cost(p)
    for _ in range(200):
        eps = np.array(
            [1e-6 * max(abs(p[0]), 1e-3), 1e-6 * max(p[1], 1e-3), 1e-6 * max(p[2], 1e-2)]
        )
        base = _fopdt_step(tt, *p)
        jac = np.column_stack(
            [(_fopdt_step(tt, *(p + np.eye(3)[i] * eps[i])) - base) / eps[i] for i in range(3)]
        )
        r = yy - base
        a = jac.T @ jac
        step = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), jac.T @ r)
        trial = p + step
        trial[1], trial[2] = max(trial[1], 1e-4), max(trial[2], 0.0)
        trial_cost = cost(trial)
        if trial_cost < current:
            p, lam = trial, lam / 3
            if current - trial_cost < 1e-14 * max(current, 1e-30):
                current = trial_cost
                break
            current = trial_cost
        else:
            lam *= 4
            if lam > 1e8:
                break
    return FopdtFit(float(p[0]), float(p[1]), float(p[2]), math.sqrt(current / tt.size) * abs(du))


# ---------------------------------------------------------------- gain and lag (any input)
@dataclass(frozen=True)
class GainLag:
    gain: float  # response per unit of expected response (1 = as required)
    lag_s: float  # delay of the response behind the expected one
    r2: float  # share of the response variance the delayed, scaled expectation explains


def fit_gain_lag(
    t: FloatArray, expected: FloatArray, response: FloatArray, *, max_lag_s: float = 60.0
) -> GainLag:
    """Fit response ≈ gain·expected(t - lag) + const over lags on the sample grid.

    A per-site diagnostic for "late or no response" against any expected trajectory
    (droop curve, aFRR setpoint): no threshold is implied here; the audit decides.
    """
    dt = float(np.median(np.diff(t)))
    lags = np.arange(0.0, max_lag_s + dt / 2, dt)
    best = GainLag(0.0, 0.0, 0.0)
    best_res = math.inf
    centred = response - response.mean()
    total = float(np.sum(centred**2))
    for lag in lags:
        shifted = np.interp(t - lag, t, expected, left=float(expected[0]))
        design = np.column_stack([shifted, np.ones_like(shifted)])
        coef, *_ = np.linalg.lstsq(design, response, rcond=None)
        res = float(np.sum((design @ coef - response) ** 2))
        if res < best_res - 1e-12:
            r2 = 1.0 - res / total if total > 0 else 0.0
            best, best_res = GainLag(float(coef[0]), float(lag), r2), res
    return best
