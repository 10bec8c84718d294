"""Per activation and per site: who did not deliver, and the likely reason.

Kinds of offence (one row each, a site may have several):

* ``WRONG_POLARITY``: the site's delivered response has the wrong sign - the polarity rule
  of the rule layer per site (:func:`analytics.rules.polarity_offenders`), with the site's
  share of the fleet requirement (capacity / number of sites), on the site's delivered
  power: battery power - its own baseline (``baseline_kw``; 0 where it reports none) - the
  expected responses of the other products armed at the site (:mod:`analytics.delivered`),
  so a home that keeps covering its own load while armed responds 0, not "wrong";
* ``STALE``: no telemetry in the window, or a gap between two samples longer than
  ``stale_s`` (the control state the audit sees is older than that);
* ``LATE`` / ``NO_RESPONSE``: the gain-and-lag fit of :func:`analytics.freqresp.fit_gain_lag`
  (for all sites at once: :func:`gain_lag_many`, same model) of the site response on its
  expected response: lag beyond the product's time limit (:data:`LATE_LIMIT_S`) is
  late; a gain below ``min_gain`` with correct polarity is no response (long limits are
  fitted on a grid of limit/30 s, so at most :data:`MAX_LAGS` lags per site);
* ``CLAMPED`` / ``OVERRIDDEN`` / ``REJECTED`` / ``FAILED``: a CommandResult in the window
  with that status, with its likely cause.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import numpy as np

from analytics.audit.extract import BASELINE, Activation, to_us
from analytics.audit.window import LOOKBACK_S, WindowSamples, read_window
from analytics.delivered import expected
from analytics.rules import judge, polarity_offenders
from analytics.rules.base import Context, Params
from analytics.rules.common import expected_response
from analytics.timeseries import FloatArray, Series
from analytics.verdicts import Verdict
from contract.enums import Product
from contract.products import rule_tag

# Lag beyond which a site is "late": the product's activation time (TR25 7.5 s for FCR-D,
# legacy 60 s to 63 % for FCR-N, FFR 1.3 s at the slowest option, aFRR 5 min, mFRR 12.5 min).
LATE_LIMIT_S = {
    Product.FCR_N: 60.0,
    Product.FCR_D_UP: 7.5,
    Product.FCR_D_DOWN: 7.5,
    Product.FFR: 1.3,
    Product.AFRR: 300.0,
    Product.MFRR: 750.0,
}
MAX_LAGS = 60
BAD_STATUSES = ("CLAMPED", "OVERRIDDEN", "REJECTED", "FAILED")


@dataclass(frozen=True)
class Offender:
    activation_id: str
    site_id: str
    oem: str
    kind: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {
            "activation_id": self.activation_id,
            "site_id": self.site_id,
            "oem": self.oem,
            "kind": self.kind,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class SiteAnalysis:
    """Offenders of one activation; per OEM the mean delivered response and the mean
    baseline per site (MW)."""

    offenders: list[Offender]
    oem_response: dict[str, FloatArray]
    oem_baseline: dict[str, FloatArray] = field(default_factory=dict)


@dataclass(frozen=True)
class SiteTrace:
    """One site's samples at ``t_s`` (seconds from the fleet series' start), MW: its power,
    its baseline (None: it reports none, 0) and ``others_mw``, the expected responses of the
    products armed at it other than the judged one (None: none; :mod:`analytics.delivered`).
    """

    site_id: str
    oem: str
    t_s: FloatArray
    power_mw: FloatArray
    baseline_mw: FloatArray | None = None
    others_mw: FloatArray | None = None

    @property
    def reference_mw(self) -> FloatArray | None:
        """What the judged product's response is measured from: baseline + others."""
        if self.others_mw is None:
            return self.baseline_mw
        if self.baseline_mw is None:
            return self.others_mw
        return np.asarray(self.baseline_mw + self.others_mw, dtype=np.float64)


def site_traces(
    con: duckdb.DuckDBPyConnection,
    fleet: Series,
    lookback_s: float = LOOKBACK_S,
    window: WindowSamples | None = None,
    product: Product | None = None,
) -> tuple[dict[str, SiteTrace], set[str]]:
    """Telemetry per site inside the fleet series' window, and every site seen shortly before.

    Sites with samples in [t0, t1] (the fleet series' first and last sample), in key order,
    each with its samples there (power, baseline, and with ``product`` the other products'
    expected responses at the fleet's frequency); and the sites with a sample in the
    ``lookback_s`` before t0 or in the window. From ``window`` (the activation's samples,
    already read for its fleet series) when it covers that range, else from a read of
    exactly that range (:func:`analytics.audit.window.read_window`).
    """
    if fleet.start is None:
        raise ValueError("the fleet series needs an absolute start")
    t0 = to_us(fleet.start)
    t1 = t0 + int(float(fleet.t[-1]) * 1e6)
    if window is None or not window.covers(t0, t1, lookback_s):
        window = read_window(con, t0, t1 + 1, lookback_s)
    site, us = window.site, window.t_us
    n = len(window.sites)
    inside = (us >= t0) & (us <= t1)
    near = (us >= t0 - int(lookback_s * 1e6)) & (us <= t1)
    seen = (np.bincount(site[near], minlength=n) > 0) | (
        window.last_before_us >= t0 - int(lookback_s * 1e6)
    )
    idx, t_in, kw = site[inside], us[inside], window.power_kw[inside]  # (site, time) order
    t_rel = (t_in - t0).astype(np.float64) / 1e6
    base = window.extra.get(BASELINE)
    reports = np.zeros(n, dtype=bool)
    base_mw = None
    if base is not None:
        base_mw = base[inside] / 1000.0
        missing = np.isnan(base_mw)
        reports = np.bincount(idx[~missing], minlength=n) > 0
        base_mw[missing] = 0.0
    others_mw = _others_mw(window, inside, t_rel, fleet, product)
    bounds = np.searchsorted(idx, np.arange(n + 1))
    traces: dict[str, SiteTrace] = {}
    for k in np.flatnonzero(bounds[1:] > bounds[:-1]).tolist():
        lo_i, hi_i = int(bounds[k]), int(bounds[k + 1])
        oem = window.oems[k]
        traces[window.sites[k]] = SiteTrace(
            window.sites[k],
            "?" if oem is None else oem,
            t_rel[lo_i:hi_i],
            kw[lo_i:hi_i] / 1000.0,
            None if base_mw is None or not reports[k] else base_mw[lo_i:hi_i],
            None if others_mw is None else others_mw[lo_i:hi_i],
        )
    return traces, {window.sites[k] for k in np.flatnonzero(seen).tolist()}


def _others_mw(
    window: WindowSamples,
    inside: np.ndarray,
    t_rel: FloatArray,
    fleet: Series,
    product: Product | None,
) -> FloatArray | None:
    """Per sample in the window: the expected responses of the products other than
    ``product`` armed at its site, at the fleet's frequency then (MW; None: none)."""
    armed = {p: a for p, a in window.armed_kw.items() if p is not product}
    if product is None or not armed:
        return None
    f = np.interp(t_rel, fleet.t, fleet.frequency("site delivered response"))
    total = np.zeros(t_rel.shape)
    for other, kw in armed.items():
        total += expected(other, kw[inside], f)
    total /= 1000.0  # kW -> MW, in place
    return total


def site_series(trace: SiteTrace, fleet: Series, share: float) -> Series:
    """The site on the fleet grid, with its share of the fleet requirement: ``baseline_mw``
    is what the judged product's response is measured from (its baseline, 0 where it reports
    none, plus the other products' expected responses), so the rule layer sees the site's
    delivered response for that product (:mod:`analytics.delivered`)."""
    t = fleet.t
    reference = trace.reference_mw
    return Series(
        t=t,
        power_mw=np.interp(t, trace.t_s, trace.power_mw),
        grid_freq_hz=fleet.grid_freq_hz,
        applied_freq_hz=fleet.applied_freq_hz,
        baseline_mw=np.zeros(t.shape) if reference is None else np.interp(t, trace.t_s, reference),
        capacity_mw=None if fleet.capacity_mw is None else fleet.capacity_mw * share,
        requested_mw=None if fleet.requested_mw is None else fleet.requested_mw * share,
        start=fleet.start,
    )


def command_offenders(
    con: duckdb.DuckDBPyConnection,
    activation: Activation,
    fleet: Series,
    oems: Mapping[str, str] | None = None,
) -> list[Offender]:
    """CommandResults with a bad status inside the window (``oems``: site -> OEM)."""
    if fleet.start is None:
        return []
    t0 = to_us(fleet.start)
    t1 = t0 + int(float(fleet.t[-1]) * 1e6)
    rows = con.execute(
        "SELECT site_id, status, likely_cause, requested_kw, written_kw, measured_kw, reason "
        "FROM audit_command_result "
        "WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?) "
        "AND status IN ('CLAMPED', 'OVERRIDDEN', 'REJECTED', 'FAILED') "
        "ORDER BY site_id, event_time",
        [t0, t1],
    ).fetchall()
    known = oems or {}
    return [
        Offender(
            activation.activation_id,
            str(site),
            known.get(str(site), "?"),
            str(status),
            f"cause {cause or 'UNKNOWN'}; requested {req} kW, written {wr} kW, "
            f"measured {meas} kW{'; ' + reason if reason else ''}",
        )
        for site, status, cause, req, wr, meas, reason in rows
    ]


def gain_lag_many(
    t: FloatArray, expected: FloatArray, responses: FloatArray, *, max_lag_s: float
) -> tuple[FloatArray, FloatArray]:
    """:func:`analytics.freqresp.fit_gain_lag` for many responses (rows) at once.

    Same model and lag grid (response ≈ gain·expected(t - lag) + const, lags on the sample
    grid, first best lag kept); returns (gain, lag_s) per row. One pass per lag over all
    sites instead of one least-squares solve per site and lag.
    """
    dt = float(np.median(np.diff(t)))
    lags = np.arange(0.0, max_lag_s + dt / 2, dt)
    y = responses - responses.mean(axis=1, keepdims=True)
    best_res = np.full(responses.shape[0], np.inf)
    gain = np.zeros(responses.shape[0])
    lag_s = np.zeros(responses.shape[0])
    yy = np.sum(y * y, axis=1)
    for lag in lags:
        x = np.interp(t - lag, t, expected, left=float(expected[0]))
        xc = x - x.mean()
        sxx = float(np.sum(xc * xc))
        if sxx <= 0:
            g = np.zeros(responses.shape[0])
            res = yy
        else:
            sxy = y @ xc
            g = sxy / sxx
            res = yy - sxy * g
        better = res < best_res - 1e-12
        best_res = np.where(better, res, best_res)
        gain = np.where(better, g, gain)
        lag_s = np.where(better, lag, lag_s)
    return gain, lag_s


@dataclass(frozen=True)
class SiteMatrix:
    """Every usable site on the fleet grid, one row per site (MW): its power, its baseline
    and the reference its response to the judged product is measured from (the baseline
    plus the other products' expected responses)."""

    sites: list[str]
    oems: list[str]
    power_mw: FloatArray  # (sites, samples)
    baseline_mw: FloatArray  # (sites, samples)
    reference_mw: FloatArray  # (sites, samples)

    @property
    def response_mw(self) -> FloatArray:
        """The delivered response attributed to the judged product, per site."""
        return self.power_mw - self.reference_mw


def site_matrix(traces: Mapping[str, SiteTrace], fleet: Series) -> SiteMatrix:
    """:func:`site_series` for many sites at once: power, baseline and reference interpolated
    onto the fleet grid."""
    sites = sorted(s for s, tr in traces.items() if tr.t_s.size >= 2)
    t = fleet.t
    power = np.empty((len(sites), t.size))
    baseline = np.zeros((len(sites), t.size))
    reference = np.zeros((len(sites), t.size))
    for k, site in enumerate(sites):
        trace = traces[site]
        power[k] = np.interp(t, trace.t_s, trace.power_mw)
        if trace.baseline_mw is not None:
            baseline[k] = np.interp(t, trace.t_s, trace.baseline_mw)
        if trace.others_mw is None:
            reference[k] = baseline[k]
        else:
            reference[k] = baseline[k] + np.interp(t, trace.t_s, trace.others_mw)
    return SiteMatrix(sites, [traces[s].oem for s in sites], power, baseline, reference)


def polarity_many(
    matrix: SiteMatrix, first: Series, activation: Activation, params: Mapping[str, Any]
) -> set[str]:
    """:func:`analytics.rules.polarity_offenders` for every site of ``matrix`` at once.

    The rule is judged on the first site (``first``: its :func:`site_series`), which raises
    what the rule raises; every site shares its grid, frequency and expected response, so
    the others' gains follow from the same formula in one pass (response on expected,
    integrated). If the first site's gain differs from the judged one, every site is
    judged one by one instead.
    """
    product, test_type = activation.product, activation.test_type
    (verdict,) = judge(
        first, product, test_type, None, only=[f"{rule_tag(product)}.POLARITY"], **params
    )
    exp = expected_response(Context(first, product, Params.from_kwargs(dict(params))))
    gains = np.asarray(
        np.trapezoid(matrix.response_mw * exp, first.t, axis=1) / np.trapezoid(exp * exp, first.t),
        dtype=np.float64,
    )
    if not math.isclose(float(gains[0]), verdict.measured, rel_tol=1e-9, abs_tol=1e-12):
        series = {
            s: replace(first, power_mw=matrix.power_mw[k], baseline_mw=matrix.reference_mw[k])
            for k, s in enumerate(matrix.sites)
        }
        return set(polarity_offenders(series, product, test_type, **params))
    return {
        site
        for site, gain in zip(matrix.sites, gains.tolist(), strict=True)
        if not replace_measured(verdict, gain).passed
    }


def replace_measured(verdict: Verdict, measured: float) -> Verdict:
    """``verdict`` re-decided for another measured value (same rule, threshold, comparison)."""
    return Verdict.compare(
        rule_id=verdict.rule_id,
        rule_version=verdict.rule_version,
        product=verdict.product,
        requirement=verdict.requirement,
        reference=verdict.reference,
        measured=measured,
        threshold=verdict.threshold,
        threshold_high=verdict.threshold_high,
        unit=verdict.unit,
        comparison=verdict.comparison,
        detail=verdict.detail,
    )


def find_offenders(
    con: duckdb.DuckDBPyConnection,
    activation: Activation,
    fleet: Series,
    *,
    stale_s: float = 10.0,
    min_gain: float = 0.5,
    judge_params: Mapping[str, Any] | None = None,
    window: WindowSamples | None = None,
) -> SiteAnalysis:
    """Every offence of every site in one activation (see module doc).

    ``window``: the activation's telemetry if already read (:func:`site_traces`).
    """
    params = dict(judge_params or {})
    traces, seen = site_traces(con, fleet, window=window, product=activation.product)
    aid = activation.activation_id
    out: list[Offender] = [
        Offender(aid, site, "?", "STALE", "no telemetry in the activation window")
        for site in sorted(seen - set(traces))
    ]
    oems = {site: trace.oem for site, trace in traces.items()}
    for site, trace in traces.items():
        ends = np.concatenate(([fleet.t[0]], trace.t_s, [fleet.t[-1]]))
        gap = float(np.max(np.diff(ends)))
        if gap > stale_s:
            out.append(
                Offender(
                    aid, site, trace.oem, "STALE", f"telemetry gap of {gap:.1f} s > {stale_s} s"
                )
            )
    matrix = site_matrix(traces, fleet)
    if not matrix.sites:
        return SiteAnalysis(out + command_offenders(con, activation, fleet, oems), {})
    response = matrix.response_mw
    groups = {o: [k for k, x in enumerate(matrix.oems) if x == o] for o in sorted(set(matrix.oems))}
    oem_response = {o: response[rows].mean(axis=0) for o, rows in groups.items()}
    reported = any(traces[s].baseline_mw is not None for s in matrix.sites)
    oem_baseline = (
        {o: matrix.baseline_mw[rows].mean(axis=0) for o, rows in groups.items()} if reported else {}
    )
    share = 1.0 / max(len(seen), 1)
    first = site_series(traces[matrix.sites[0]], fleet, share)
    wrong = polarity_many(matrix, first, activation, params)
    out += [
        Offender(aid, site, oems[site], "WRONG_POLARITY", "delivered response has the wrong sign")
        for site in sorted(wrong)
    ]
    out += _late_or_silent(activation, matrix, first, wrong=wrong, params=params, min_gain=min_gain)
    return SiteAnalysis(
        out + command_offenders(con, activation, fleet, oems), oem_response, oem_baseline
    )


def _late_or_silent(
    activation: Activation,
    matrix: SiteMatrix,
    first: Series,
    *,
    wrong: set[str],
    params: Mapping[str, Any],
    min_gain: float,
) -> list[Offender]:
    """LATE / NO_RESPONSE for sites with the right polarity (see module doc)."""
    rows = [k for k, s in enumerate(matrix.sites) if s not in wrong]
    if not rows:
        return []
    ctx = Context(first, activation.product, Params.from_kwargs(dict(params)))
    expected = expected_response(ctx)
    if not np.any(expected != 0):
        return []
    limit = LATE_LIMIT_S[activation.product]
    max_lag = min(2 * limit, 0.5 * float(first.t[-1] - first.t[0]))
    # at most MAX_LAGS lag steps: long limits (mFRR 750 s) are fitted on a coarser grid
    step = max(float(first.interval_s()), max_lag / MAX_LAGS)
    grid = np.arange(float(first.t[0]), float(first.t[-1]) + step / 2, step)
    # every site's expected response is its share of the same curve: the first one's
    response = matrix.response_mw
    responses = np.vstack([np.interp(grid, first.t, response[k]) for k in rows])
    gains, lags = gain_lag_many(
        grid, np.interp(grid, first.t, expected), responses, max_lag_s=max_lag
    )
    out = []
    for k, gain, lag in zip(rows, gains.tolist(), lags.tolist(), strict=True):
        site, oem = matrix.sites[k], matrix.oems[k]
        if gain < min_gain:
            out.append(
                Offender(
                    activation.activation_id,
                    site,
                    oem,
                    "NO_RESPONSE",
                    f"gain {gain:.2f} < {min_gain}",
                )
            )
        elif lag > limit:
            out.append(
                Offender(
                    activation.activation_id, site, oem, "LATE", f"lag {lag:.1f} s > {limit} s"
                )
            )
    return out
