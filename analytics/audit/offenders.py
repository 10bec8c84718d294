"""Per activation and per site: who did not deliver, and the likely reason.

Kinds of offence (one row each, a site may have several):

* ``WRONG_POLARITY``: the site's response has the wrong sign - the polarity rule of the
  rule layer per site (:func:`analytics.rules.polarity_offenders`), with the site's share
  of the fleet requirement (capacity / number of sites) and its own pre-window baseline;
* ``STALE``: no telemetry in the window, or a gap between two samples longer than
  ``stale_s`` (the control state the audit sees is older than that);
* ``LATE`` / ``NO_RESPONSE``: :func:`analytics.freqresp.fit_gain_lag` of the site response
  on its expected response: lag beyond the product's time limit (:data:`LATE_LIMIT_S`) is
  late; a gain below ``min_gain`` with correct polarity is no response;
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
from analytics.freqresp import fit_gain_lag
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


def site_traces(
    con: duckdb.DuckDBPyConnection, fleet: Series, lookback_s: float = 900.0
) -> tuple[dict[str, SiteTrace], set[str]]:
    """Telemetry per site inside the fleet series' window, and every site seen shortly before."""
    if fleet.start is None:
        raise ValueError("the fleet series needs an absolute start")
    t0 = to_us(fleet.start)
    t1 = t0 + int(float(fleet.t[-1]) * 1e6)
    rows = con.execute(
        "SELECT site_id, any_value(oem), list(epoch_us(event_time) ORDER BY event_time), "
        "list(battery_power_kw ORDER BY event_time) FROM site_telemetry "
        "WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?) "
        "GROUP BY site_id ORDER BY site_id",
        [t0, t1],
    ).fetchall()
    traces = {
        str(site): SiteTrace(
            str(site),
            str(oem),
            (np.asarray(us, dtype=np.int64) - t0).astype(np.float64) / 1e6,
            np.asarray(kw, dtype=np.float64) / 1000.0,
        )
        for site, oem, us, kw in rows
    }
    seen = con.execute(
        "SELECT DISTINCT site_id FROM site_telemetry "
        "WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?)",
        [t0 - int(lookback_s * 1e6), t1],
    ).fetchall()
    return traces, {str(s) for (s,) in seen}


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
    con: duckdb.DuckDBPyConnection, activation: Activation, fleet: Series
) -> list[Offender]:
    """CommandResults with a bad status inside the window."""
    if fleet.start is None:
        return []
    t0 = to_us(fleet.start)
    t1 = t0 + int(float(fleet.t[-1]) * 1e6)
    rows = con.execute(
        "SELECT r.site_id, coalesce(any_value(t.oem), '?'), r.status, r.likely_cause, "
        "r.requested_kw, r.written_kw, r.measured_kw, r.reason FROM command_result r "
        "LEFT JOIN (SELECT DISTINCT site_id, oem FROM site_telemetry "
        "  WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?)) t "
        "ON t.site_id = r.site_id "
        "WHERE r.event_time >= make_timestamp(?) AND r.event_time <= make_timestamp(?) "
        "AND r.status IN ('CLAMPED', 'OVERRIDDEN', 'REJECTED', 'FAILED') "
        "GROUP BY ALL ORDER BY r.site_id",
        [t0, t1, t0, t1],
    ).fetchall()
    return [
        Offender(
            activation.activation_id,
            str(site),
            str(oem),
            str(status),
            f"cause {cause or 'UNKNOWN'}; requested {req} kW, written {wr} kW, "
            f"measured {meas} kW{'; ' + reason if reason else ''}",
        )
        for site, oem, status, cause, req, wr, meas, reason in rows
    ]


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
        return SiteAnalysis(out + command_offenders(con, activation, fleet), {})
    by_oem: dict[str, list[FloatArray]] = {}
    for site, series in usable.items():
        by_oem.setdefault(oems[site], []).append(series.response_mw())
    oem_response = {o: np.mean(np.vstack(v), axis=0) for o, v in sorted(by_oem.items())}
    wrong = set(polarity_offenders(usable, activation.product, activation.test_type, **params))
    limit = LATE_LIMIT_S[activation.product]
    for site, series in sorted(usable.items()):
        if site in wrong:
            out.append(
                Offender(aid, site, oems[site], "WRONG_POLARITY", "response has the wrong sign")
            )
            continue
        ctx = Context(series, activation.product, Params.from_kwargs(dict(params)))
        expected = expected_response(ctx)
        if not np.any(expected != 0):
            continue
        max_lag = min(2 * limit, 0.5 * float(series.t[-1] - series.t[0]))
        fit = fit_gain_lag(series.t, expected, series.response_mw(), max_lag_s=max_lag)
        if fit.gain < min_gain:
            out.append(
                Offender(aid, site, oems[site], "NO_RESPONSE", f"gain {fit.gain:.2f} < {min_gain}")
            )
        elif fit.lag_s > limit:
            out.append(
                Offender(aid, site, oems[site], "LATE", f"lag {fit.lag_s:.1f} s > {limit} s")
            )
    return SiteAnalysis(out + command_offenders(con, activation, fleet), oem_response)
