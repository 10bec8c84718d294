"""Per activation and per site: who did not deliver, and the likely reason.

Kinds of offence (one row each, a site may have several):

* ``WRONG_POLARITY``: the site's response has the wrong sign - the polarity rule of the
  rule layer per site (:func:`analytics.rules.polarity_offenders`), with the site's share
  of the fleet requirement (capacity / number of sites) and its own pre-window baseline;
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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from analytics.audit.extract import Activation, to_us
from analytics.rules import polarity_offenders
from analytics.rules.base import Context, Params
from analytics.rules.common import expected_response
from analytics.timeseries import FloatArray, Series
from analytics.verdicts import Product

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
    """Offenders of one activation and the mean response per site of each OEM (MW)."""

    offenders: list[Offender]
    oem_response: dict[str, FloatArray]


@dataclass(frozen=True)
class SiteTrace:
    site_id: str
    oem: str
    t_s: FloatArray  # seconds from the fleet series start
    power_mw: FloatArray


def site_oems(
    con: duckdb.DuckDBPyConnection, t0_us: int, t1_us: int, probe_s: float = 30.0
) -> dict[str, str]:
    """Site -> OEM from the first ``probe_s`` of [t0, t1], widened to all of it if needed."""
    out: dict[str, str] = {}
    for hi in (min(t0_us + int(probe_s * 1e6), t1_us), t1_us):
        rows = con.execute(
            "SELECT decode(key), any_value(oem) FROM audit_site_telemetry "
            "WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?) "
            "GROUP BY key",
            [t0_us, hi],
        ).fetchall()
        out = {str(site): str(oem) for site, oem in rows}
        if hi == t1_us:
            break
        seen = con.execute(
            "SELECT count(DISTINCT key) FROM audit_site_telemetry "
            "WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?)",
            [t0_us, t1_us],
        ).fetchone()
        if seen is not None and int(seen[0]) <= len(out):
            break
    return out


def site_traces(
    con: duckdb.DuckDBPyConnection, fleet: Series, lookback_s: float = 900.0
) -> tuple[dict[str, SiteTrace], set[str]]:
    """Telemetry per site inside the fleet series' window, and every site seen shortly before."""
    if fleet.start is None:
        raise ValueError("the fleet series needs an absolute start")
    t0 = to_us(fleet.start)
    t1 = t0 + int(float(fleet.t[-1]) * 1e6)
    # the Kafka key of site telemetry is the site id: only the power is parsed per sample,
    # the OEM from each site's first few seconds
    cols = con.execute(
        "WITH w AS (SELECT key, epoch_us(event_time) AS u, battery_power_kw AS p "
        "  FROM audit_site_telemetry "
        "  WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?)), "
        "k AS (SELECT key, row_number() OVER (ORDER BY key) - 1 AS idx "
        "  FROM (SELECT DISTINCT key FROM w)) "
        "SELECT k.idx, w.u, w.p FROM w JOIN k USING (key) ORDER BY k.idx, w.u",
        [t0, t1],
    ).fetchnumpy()
    keys = con.execute(
        "SELECT DISTINCT decode(key) AS site FROM audit_site_telemetry "
        "WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?) "
        "ORDER BY site",
        [t0, t1],
    ).fetchall()
    idx = np.asarray(cols["idx"], dtype=np.int64)
    us = np.asarray(cols["u"], dtype=np.int64)
    kw = np.asarray(cols["p"], dtype=np.float64)
    bounds = np.searchsorted(idx, np.arange(len(keys) + 1))
    oems = site_oems(con, t0, t1)
    traces = {}
    for k, (site,) in enumerate(keys):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        traces[str(site)] = SiteTrace(
            str(site),
            oems.get(str(site), "?"),
            (us[lo:hi] - t0).astype(np.float64) / 1e6,
            kw[lo:hi] / 1000.0,
        )
    # the Kafka key of site telemetry is the site id: no payload parsing for the lookback
    seen = con.execute(
        "SELECT DISTINCT decode(key) FROM audit_site_telemetry "
        "WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?)",
        [t0 - int(lookback_s * 1e6), t1],
    ).fetchall()
    return traces, {str(s) for (s,) in seen} | set(traces)


def site_series(trace: SiteTrace, fleet: Series, share: float, start_s: float) -> Series:
    """The site's response on the fleet grid, with its share of the fleet requirement."""
    power = np.interp(fleet.t, trace.t_s, trace.power_mw)
    pre = fleet.t < start_s
    baseline = float(np.mean(power[pre])) if np.any(pre) else float(power[0])
    return Series(
        t=fleet.t,
        power_mw=power,
        grid_freq_hz=fleet.grid_freq_hz,
        applied_freq_hz=fleet.applied_freq_hz,
        baseline_mw=np.full(fleet.t.shape, baseline),
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


def find_offenders(
    con: duckdb.DuckDBPyConnection,
    activation: Activation,
    fleet: Series,
    *,
    stale_s: float = 10.0,
    min_gain: float = 0.5,
    judge_params: Mapping[str, Any] | None = None,
) -> SiteAnalysis:
    """Every offence of every site in one activation (see module doc)."""
    params = dict(judge_params or {})
    traces, seen = site_traces(con, fleet)
    aid = activation.activation_id
    if fleet.start is None:
        raise ValueError("the fleet series needs an absolute start")
    start_s = float(fleet.t[0]) + (to_us(activation.start) - to_us(fleet.start)) / 1e6
    out: list[Offender] = [
        Offender(aid, site, "?", "STALE", "no telemetry in the activation window")
        for site in sorted(seen - set(traces))
    ]
    usable: dict[str, Series] = {}
    oems: dict[str, str] = {}
    share = 1.0 / max(len(seen), 1)
    for site, trace in traces.items():
        oems[site] = trace.oem
        ends = np.concatenate(([fleet.t[0]], trace.t_s, [fleet.t[-1]]))
        gap = float(np.max(np.diff(ends)))
        if gap > stale_s:
            out.append(
                Offender(
                    aid, site, trace.oem, "STALE", f"telemetry gap of {gap:.1f} s > {stale_s} s"
                )
            )
        if trace.t_s.size >= 2:
            usable[site] = site_series(trace, fleet, share, start_s)
    if not usable:
        return SiteAnalysis(out + command_offenders(con, activation, fleet, oems), {})
    by_oem: dict[str, list[FloatArray]] = {}
    for site, series in usable.items():
        by_oem.setdefault(oems[site], []).append(series.response_mw())
    oem_response = {o: np.mean(np.vstack(v), axis=0) for o, v in sorted(by_oem.items())}
    wrong = set(polarity_offenders(usable, activation.product, activation.test_type, **params))
    out += [
        Offender(aid, site, oems[site], "WRONG_POLARITY", "response has the wrong sign")
        for site in sorted(wrong)
    ]
    out += _late_or_silent(
        activation, usable, wrong=wrong, oems=oems, params=params, min_gain=min_gain
    )
    return SiteAnalysis(out + command_offenders(con, activation, fleet, oems), oem_response)


def _late_or_silent(
    activation: Activation,
    usable: Mapping[str, Series],
    *,
    wrong: set[str],
    oems: Mapping[str, str],
    params: Mapping[str, Any],
    min_gain: float,
) -> list[Offender]:
    """LATE / NO_RESPONSE for sites with the right polarity (see module doc)."""
    sites = sorted(s for s in usable if s not in wrong)
    if not sites:
        return []
    first = usable[sites[0]]
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
    responses = np.vstack([np.interp(grid, usable[s].t, usable[s].response_mw()) for s in sites])
    gains, lags = gain_lag_many(
        grid, np.interp(grid, first.t, expected), responses, max_lag_s=max_lag
    )
    out = []
    for site, gain, lag in zip(sites, gains.tolist(), lags.tolist(), strict=True):
        if gain < min_gain:
            out.append(
                Offender(
                    activation.activation_id,
                    site,
                    oems[site],
                    "NO_RESPONSE",
                    f"gain {gain:.2f} < {min_gain}",
                )
            )
        elif lag > limit:
            out.append(
                Offender(
                    activation.activation_id,
                    site,
                    oems[site],
                    "LATE",
                    f"lag {lag:.1f} s > {limit} s",
                )
            )
    return out
