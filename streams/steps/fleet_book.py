"""The leader's view of the fleet's sites: each site's latest slice row and command result.

The leader does not read telemetry: the partition owners do, and each closed window of
the shortest length reaches it as a slice (``steps.slices``) holding every site's last
sample with its power limits. :class:`FleetBook` keeps each site's newest such sample
(newest event time wins) column-wise, one row per site ever seen (a slice updates its rows
in one vectorised step), and each site's newest command result. The allocator's statuses
and live compliance's stale sites come from it; a site's sample is read through
:class:`SampleReading`, the ``availability.Reading`` the room computation takes, built only
when the statuses are asked for (an allocation, a re-split) and only for sites that changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.enums import SiteMode
from contract.records import CommandResult
from streams.steps.availability import SiteStatus
from streams.steps.slices import WindowSlice

_NO_TIME = np.iinfo(np.int64).min
ROWS_CACHE = 256
_STACK = 6
#: the float columns kept per site (the slice's arrays of the same names)
_FLOATS = (
    "power_kw",
    "headroom_up_kw",
    "headroom_down_kw",
    "max_discharge_kw",
    "max_charge_kw",
    "baseline_kw",
)


@dataclass(frozen=True, slots=True)
class SampleReading:
    """A site's latest sample as an ``availability.Reading`` (missing limits: 0)."""

    site_id: str
    event_time: int
    battery_power_kw: float
    headroom_up_kw: float
    headroom_down_kw: float
    max_discharge_kw: float
    max_charge_kw: float
    faulted: bool
    baseline_kw: float | None
    armed_fcr_n_kw: float
    armed_fcr_d_up_kw: float
    armed_fcr_d_down_kw: float
    armed_ffr_kw: float
    order_afrr_kw: float
    order_mfrr_kw: float

    @property
    def mode(self) -> SiteMode:
        """FAULT for a faulted site (a sample folds the mode into ``faulted``)."""
        return SiteMode.FAULT if self.faulted else SiteMode.UNKNOWN


class FleetBook:
    """Latest sample and command result per site (see the module doc)."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._sites: list[str] = []
        self._time = np.full(0, _NO_TIME, np.int64)
        self._floats = {name: np.zeros(0, np.float64) for name in _FLOATS}
        self._faulted = np.zeros(0, np.bool_)
        self._stack = np.zeros((0, _STACK), np.float64)
        self._changed = np.zeros(0, np.int64)  # per row: the book version of its last change
        self._readings: dict[str, tuple[int, SampleReading]] = {}
        # a partition's slices name the same sites second after second: their rows, kept
        self._rows_cache: dict[tuple[str, ...], npt.NDArray[np.intp]] = {}
        self.results: dict[str, CommandResult] = {}
        self.version = 0
        self._statuses: tuple[int, tuple[SiteStatus, ...]] | None = None

    def _rows_of(self, sites: tuple[str, ...]) -> npt.NDArray[np.intp]:
        cached = self._rows_cache.get(sites)
        if cached is not None:
            return cached
        if len(self._rows_cache) >= ROWS_CACHE:
            self._rows_cache.clear()
        rows = self._rows_cache[sites] = self._new_rows(sites)
        return rows

    def _new_rows(self, sites: tuple[str, ...]) -> npt.NDArray[np.intp]:
        index = self._index
        rows = np.empty(len(sites), np.intp)
        added = False
        for i, site in enumerate(sites):
            row = index.get(site)
            if row is None:
                row = index[site] = len(self._sites)
                self._sites.append(site)
                added = True
            rows[i] = row
        if added:
            self._grow(len(self._sites))
        return rows

    def _grow(self, n: int) -> None:
        size = len(self._time)
        if n <= size:
            return
        more = max(n, 2 * size) - size
        self._time = np.concatenate((self._time, np.full(more, _NO_TIME, np.int64)))
        for name in _FLOATS:
            self._floats[name] = np.concatenate((self._floats[name], np.zeros(more)))
        self._faulted = np.concatenate((self._faulted, np.zeros(more, np.bool_)))
        self._stack = np.concatenate((self._stack, np.zeros((more, _STACK))))
        self._changed = np.concatenate((self._changed, np.zeros(more, np.int64)))

    def note_slice(self, s: WindowSlice) -> None:
        """A slice's rows: each site's sample if it is the newest (a tie: the later one)."""
        if not len(s):
            return
        rows = self._rows_of(s.site_ids)
        newer = s.event_time >= self._time[rows]
        if not newer.any():
            return
        kept = rows[newer]
        self._time[kept] = s.event_time[newer]
        for name in _FLOATS:
            self._floats[name][kept] = getattr(s, name)[newer]
        self._faulted[kept] = s.faulted[newer]
        self._stack[kept] = 0.0 if s.stack is None else s.stack[newer]
        self.version += 1
        self._changed[kept] = self.version

    def update_result(self, record: Mapping[str, Any]) -> CommandResult:
        """A decoded CommandResult (``InvalidRecordError`` when it is not a valid one)."""
        result = CommandResult.from_record(record)
        prev = self.results.get(result.site_id)
        if prev is None or result.event_time >= prev.event_time:
            self.results[result.site_id] = result
            self.version += 1
        return result

    def reading(self, site_id: str) -> SampleReading | None:
        row = self._index.get(site_id)
        if row is None or self._time[row] == _NO_TIME:
            return None
        changed = int(self._changed[row])
        cached = self._readings.get(site_id)
        if cached is not None and cached[0] == changed:
            return cached[1]
        f = {name: float(self._floats[name][row]) for name in _FLOATS}
        baseline = f["baseline_kw"]
        reading = SampleReading(
            site_id,
            int(self._time[row]),
            f["power_kw"],
            f["headroom_up_kw"],
            f["headroom_down_kw"],
            0.0 if math.isnan(f["max_discharge_kw"]) else f["max_discharge_kw"],
            0.0 if math.isnan(f["max_charge_kw"]) else f["max_charge_kw"],
            bool(self._faulted[row]),
            None if math.isnan(baseline) else baseline,
            *(float(v) for v in self._stack[row]),
        )
        self._readings[site_id] = (changed, reading)
        return reading

    def statuses(self) -> tuple[SiteStatus, ...]:
        """One SiteStatus per known site, by site_id (the same tuple while nothing changed)."""
        cached = self._statuses
        if cached is not None and cached[0] == self.version:
            return cached[1]
        results = self.results
        sites = sorted(self._index.keys() | results.keys())
        out = tuple(SiteStatus(site, self.reading(site), results.get(site)) for site in sites)
        self._statuses = (self.version, out)
        return out

    def stale(self, before: int) -> list[str]:
        """The sites (sorted) whose latest sample is older than ``before``."""
        n = len(self._sites)
        rows = np.flatnonzero(self._time[:n] < before)
        names = self._sites
        return sorted(names[r] for r in rows.tolist())

    @property
    def last_seen(self) -> dict[str, int]:
        """Event time of each site's latest sample."""
        return {site: int(self._time[row]) for site, row in self._index.items()}

    def __len__(self) -> int:
        return len(self._sites)
