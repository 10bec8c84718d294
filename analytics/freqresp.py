"""Frequency response of the dispatch chain: sine-test fits, TR25 Req 8/9/10, FOPDT fits.

Sine tests (TR25 §2.3, eqs 6-9). For one period T, a least-squares sine of that period
(plus offset and linear trend, i.e. baseline removed) is fitted to the test frequency and
to the response power over whole stationary periods. With ω = 2π/T:

    |F(jω)| = (A_P / A_f) · (|Δf_FCR-X| / |ΔP_ss,theo|)     Δf = 0.1 Hz (N) / 0.4 Hz (D)
    φ(ω)    = phase of P minus phase of (-f)                 negative when power lags

so an ideal droop (power follows -Δf without delay) gives F = 1∠0. TR25 writes φ from the
peak times, φ = (t_peak,f - t_peak,P)·360°/T, with the frequency peak taken in the
activating direction; the fitted phases give the same number without picking peaks. With
an internal test signal, F is multiplied by F_FME(jω) = 1/(T_FME·jω + 1).

Stability (Req 8, eqs 10-11, Table 7): G0(jω) = F(jω)·G(jω) with the grid model
G = (ΔP_FCR-X/Δf_FCR-X)·(f0/S_n)/(2H·jω + K_f·f0). The Nyquist curve (|F| and φ
interpolated linearly in log ω between tested periods) must stay outside the circle of
radius 0.43 around -1 (95 % margin accepted: 0.4085; FCR-N may be granted 75 %).
Sign: the converted TR25 text writes G0 = -F·G; that form belongs to F defined from +Δf to
+ΔP. With F normalised as above (ideal = +1), the loop is 1 + F·G, so G0 = F·G; ``sign``
lets an auditor flip it if the original PDF says otherwise.

Performance (Req 9, §3.3): K_margin·|G_perf/(1 + F·G_perf)|·|D(jω)| <= 1 with
D(s) = 1/(70 s + 1), K_margin = 0.95, on the dense ω grid of the tested range.

Linearity (Req 10, §3.4.1): sqrt(Σ(P - P_est)²)/sqrt(Σ(P_est - mean P_est)²) < 1.

Step responses: :func:`fit_fopdt_step` fits gain·e^(-Ls)/(τs + 1) to a step response by
Levenberg-Marquardt, started from Smith's two-point (28.3 %/63.2 %) estimate.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.timeseries import FloatArray, InsufficientDataError, Series
from analytics.verdicts import Product, Verdict

FULL_BAND_HZ = {Product.FCR_N: 0.1, Product.FCR_D_UP: 0.4, Product.FCR_D_DOWN: 0.4}
STABILITY_RADIUS = 0.43
PERF_TIME_CONSTANT_S = 70.0
K_MARGIN = 0.95
TR25 = "TR-2025-03-28"
ComplexArray = npt.NDArray[np.complex128]


@dataclass(frozen=True)
class GridModel:
    """TR25 Table 7 power-system model for one product and purpose."""

    dp_mw: float
    df_hz: float
    s_n_mw: float
    h_s: float
    f0_hz: float = 50.0
    k_f: float = 0.01

    def __call__(self, w: FloatArray) -> ComplexArray:
        s = (1j * w).astype(np.complex128)
        out: ComplexArray = (
            (self.dp_mw / self.df_hz)
            * (self.f0_hz / self.s_n_mw)
            / (2 * self.h_s * s + self.k_f * self.f0_hz)
        )
        return out


def grid_model(product: Product, purpose: str) -> GridModel:
    """``purpose`` is "stability" (S_n 23 000 MW) or "performance" (S_n 42 000 MW)."""
    dp, df = (600.0, 0.1) if product is Product.FCR_N else (1450.0, 0.4)
    if purpose == "stability":
        return GridModel(dp, df, 23_000.0, 120_000.0 / 23_000.0)
    if purpose == "performance":
        return GridModel(dp, df, 42_000.0, 190_000.0 / 42_000.0)
    raise ValueError(f"purpose must be 'stability' or 'performance', got {purpose!r}")


@dataclass(frozen=True)
class SineFit:
    amplitude: float
    phase_rad: float  # y ≈ offset + trend·t + amplitude·sin(ωt + phase)
    offset: float
    nrmse: float  # Req 10 measure: ||y - fit|| / ||fit - mean(fit)||


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

    @property
    def omega(self) -> float:
        return 2 * math.pi / self.period_s

    @property
    def f(self) -> complex:
        return self.gain * cmath.exp(1j * math.radians(self.phase_deg))


def fit_period(
    series: Series,
    period_s: float,
    product: Product,
    dp_ss_mw: float,
    *,
    t_fme_s: float | None = None,
    max_periods: int = 5,
) -> PeriodFit:
    """Fit one sine-test period over the last whole stationary periods (first one skipped)."""
    if product not in FULL_BAND_HZ:
        raise ValueError(f"sine tests are for FCR products, got {product}")
    duration = float(series.t[-1] - series.t[0])
    n = min(max_periods, int(duration // period_s) - 1)
    if n < 2:
        raise InsufficientDataError(
            f"sine period {period_s:g} s: needs >= 3 periods of data (2 stationary after one"
            f" settling period), got {duration:.1f} s"
        )
    t0 = float(series.t[-1]) - n * period_s
    keep = series.t >= t0 - 1e-9
    t, f = series.t[keep], series.frequency("sine fit")[keep]
    p = series.response_mw()[keep]
    ff, fp = fit_sine(t, f, period_s), fit_sine(t, p, period_s)
    if ff.amplitude <= 0:
        raise InsufficientDataError(f"sine period {period_s:g} s: the frequency does not oscillate")
    gain = fp.amplitude / ff.amplitude * FULL_BAND_HZ[product] / abs(dp_ss_mw)
    phase = fp.phase_rad - (ff.phase_rad + math.pi)
    value = gain * cmath.exp(1j * phase)
    if t_fme_s is not None:
        value /= 1 + 1j * (2 * math.pi / period_s) * t_fme_s
    return PeriodFit(period_s, abs(value), math.degrees(cmath.phase(value)), fp.nrmse, n)


def interpolate(fits: Sequence[PeriodFit], points: int = 400) -> tuple[FloatArray, ComplexArray]:
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
    fits: Sequence[PeriodFit], product: Product, *, margin: float = 0.95, sign: int = 1
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
        rule_id=f"{product.tag}.REQ8.NYQUIST",
        rule_version=TR25,
        product=product,
        requirement="Nyquist curve outside the 0.43 circle around -1",
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


def performance_check(fits: Sequence[PeriodFit], product: Product) -> Verdict:
    """Req 9: max over ω of K_margin·|G/(1 + F·G)|·|D| <= 1; detail gives K_red,dyn."""
    w, f = interpolate(fits)
    worst = float(performance_ratio(w, f, product).max())
    k_red = 1.0
    if worst > 1:  # largest K in (0, 1] with the check passing for F/K (bisection)
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = (lo + hi) / 2
            ok = mid > 0 and performance_ratio(w, f / mid, product).max() <= 1
            lo, hi = (mid, hi) if ok else (lo, mid)
        k_red = lo
    return Verdict.compare(
        rule_id=f"{product.tag}.REQ9.PERFORMANCE",
        rule_version=TR25,
        product=product,
        requirement="K_margin·|G/(1+FG)| < |1/D|, D = 1/(70s+1)",
        reference="TR25 §3.3 Req 9",
        measured=worst,
        threshold=1.0,
        unit="ratio",
        comparison="<=",
        detail=f"K_margin {K_MARGIN}; K_red,dyn needed {k_red:.3f}",
    )


def linearity_check(fit: PeriodFit, product: Product) -> Verdict:
    """Req 10 for one period: normalised RMSE of the sine fit < 1."""
    return Verdict.compare(
        rule_id=f"{product.tag}.REQ10.LINEARITY",
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
