"""Dispatch-chain dynamics per site and per OEM: FOPDT fits of command -> battery power steps.

Every ``SiteCommand`` of kind SET_POWER is a step of the requested power from the site's
mean battery power over the 10 s before it to ``power_kw``. The site's telemetry from 10 s
before to ``window_s`` after (or up to its next command) is fitted with
:func:`analytics.freqresp.fit_fopdt_step` (gain, time constant, dead time). Steps smaller
than ``min_step_kw`` or with too few samples are skipped. Per site and per OEM the median of
each parameter is reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import duckdb
import numpy as np

from analytics.freqresp import FopdtFit, fit_fopdt_step
from analytics.timeseries import SeriesError


@dataclass(frozen=True)
class ChainFit:
    """Median FOPDT parameters over ``steps`` fitted steps of one site or one OEM."""

    name: str
    oem: str
    steps: int
    gain: float
    tau_s: float
    dead_time_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "oem": self.oem,
            "steps": self.steps,
            "gain": self.gain,
            "tau_s": self.tau_s,
            "dead_time_s": self.dead_time_s,
        }


def _median(name: str, oem: str, fits: list[FopdtFit]) -> ChainFit:
    return ChainFit(
        name,
        oem,
        len(fits),
        float(np.median([f.gain for f in fits])),
        float(np.median([f.tau_s for f in fits])),
        float(np.median([f.dead_time_s for f in fits])),
    )


def _fit_steps(
    steps: list[tuple[int, float]],
    t_all: np.ndarray,
    p_all: np.ndarray,
    window_s: float,
    min_step_kw: float,
) -> list[FopdtFit]:
    """FOPDT fits of one site's command steps against its telemetry (µs, kW)."""
    fits = []
    for k, (us, kw) in enumerate(steps):
        stop = steps[k + 1][0] if k + 1 < len(steps) else us + int(window_s * 1e6)
        stop = min(stop, us + int(window_s * 1e6))
        keep = (t_all >= us - 10_000_000) & (t_all < stop)
        t = (t_all[keep] - us).astype(np.float64) / 1e6
        p = p_all[keep]
        pre = t < 0
        if not np.any(pre):
            continue
        du = kw - float(np.mean(p[pre]))
        if abs(du) < min_step_kw:
            continue
        try:
            fits.append(fit_fopdt_step(t, p, 0.0, du))
        except SeriesError:
            continue
    return fits


def fit_chains(
    con: duckdb.DuckDBPyConnection,
    since_us: int | None = None,
    until_us: int | None = None,
    *,
    window_s: float = 60.0,
    min_step_kw: float = 1.0,
) -> tuple[list[ChainFit], list[ChainFit]]:
    """(per-site fits, per-OEM fits) from every SET_POWER command in [since, until)."""
    cond = ["kind = 'SET_POWER'", "power_kw IS NOT NULL"]
    if since_us is not None:
        cond.append(f"event_time >= make_timestamp({int(since_us)})")
    if until_us is not None:
        cond.append(f"event_time < make_timestamp({int(until_us)})")
    commands = con.execute(
        "SELECT site_id, epoch_us(event_time), power_kw FROM audit_site_command "  # noqa: S608  # fixed text, integers
        f"WHERE {' AND '.join(cond)} ORDER BY site_id, event_time"
    ).fetchall()
    by_site: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for site, us, kw in commands:
        by_site[str(site)].append((int(us), float(kw)))
    site_fits: dict[str, list[FopdtFit]] = defaultdict(list)
    oem_of: dict[str, str] = {}
    if not by_site:
        return [], []
    lo = min(steps[0][0] for steps in by_site.values()) - 10_000_000
    hi = max(steps[-1][0] for steps in by_site.values()) + int(window_s * 1e6)
    rows = con.execute(
        "SELECT site_id, any_value(oem), list(epoch_us(event_time) ORDER BY event_time), "
        "list(battery_power_kw ORDER BY event_time) FROM audit_site_telemetry "
        "WHERE event_time >= make_timestamp(?) AND event_time <= make_timestamp(?) "
        "AND site_id IN (SELECT unnest(?)) GROUP BY site_id",
        [lo, hi, sorted(by_site)],
    ).fetchall()
    for site, oem, stamps, powers in rows:
        oem_of[str(site)] = str(oem)
        t_all = np.asarray(stamps, dtype=np.int64)
        p_all = np.asarray(powers, dtype=np.float64)
        site_fits[str(site)] = _fit_steps(by_site[str(site)], t_all, p_all, window_s, min_step_kw)
    per_site = [_median(s, oem_of[s], f) for s, f in sorted(site_fits.items()) if f]
    per_oem_fits: dict[str, list[FopdtFit]] = defaultdict(list)
    for site, fits in site_fits.items():
        per_oem_fits[oem_of[site]].extend(fits)
    per_oem = [_median(o, o, f) for o, f in sorted(per_oem_fits.items()) if f]
    return per_site, per_oem
