"""The leader's view of the fleet's sites: each site's latest slice row and command result.

The leader does not read telemetry: the partition owners do, and each closed window of
the shortest length reaches it as a slice (``steps.slices``) holding every site's last
sample with its power limits. :class:`FleetBook` keeps each site's newest such sample
(newest event time wins) and its newest command result; the allocator's statuses and live
compliance's "last seen" come from it. A sample is read through :class:`SampleReading`,
the ``availability.Reading`` the room computation takes (built once per new sample).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contract.enums import SiteMode
from contract.records import CommandResult
from streams.steps.availability import SiteStatus
from streams.steps.fleet_aggregation import SiteSample

_NO_STACK = (0.0,) * 6


@dataclass(frozen=True, slots=True)
class SampleReading:
    """A slice row as an ``availability.Reading`` (limits missing in an old row: 0)."""

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

    @classmethod
    def of(cls, site_id: str, sample: SiteSample) -> SampleReading:
        stack = sample.stack or _NO_STACK
        return cls(
            site_id,
            sample.event_time,
            sample.power_kw,
            sample.headroom_up_kw,
            sample.headroom_down_kw,
            sample.max_discharge_kw or 0.0,
            sample.max_charge_kw or 0.0,
            sample.faulted,
            sample.baseline_kw,
            *stack,
        )


class FleetBook:
    """Latest sample and command result per site (see the module doc)."""

    def __init__(self) -> None:
        self._samples: dict[str, SiteSample] = {}
        self._readings: dict[str, SampleReading] = {}
        self.results: dict[str, CommandResult] = {}
        self.version = 0
        self._statuses: tuple[int, tuple[SiteStatus, ...]] | None = None

    def note_rows(self, rows: Iterable[tuple[str, SiteSample]]) -> None:
        """A slice's rows: each site's sample if it is the newest."""
        samples = self._samples
        for site, sample in rows:
            prev = samples.get(site)
            if prev is None or sample.event_time >= prev.event_time:
                samples[site] = sample
                self._readings.pop(site, None)
                self.version += 1

    def update_result(self, record: Mapping[str, Any]) -> CommandResult:
        """A decoded CommandResult (``InvalidRecordError`` when it is not a valid one)."""
        result = CommandResult.from_record(record)
        prev = self.results.get(result.site_id)
        if prev is None or result.event_time >= prev.event_time:
            self.results[result.site_id] = result
            self.version += 1
        return result

    def reading(self, site_id: str) -> SampleReading | None:
        reading = self._readings.get(site_id)
        if reading is None:
            sample = self._samples.get(site_id)
            if sample is None:
                return None
            reading = self._readings[site_id] = SampleReading.of(site_id, sample)
        return reading

    def statuses(self) -> tuple[SiteStatus, ...]:
        """One SiteStatus per known site, by site_id (the same tuple while nothing changed)."""
        cached = self._statuses
        if cached is not None and cached[0] == self.version:
            return cached[1]
        results = self.results
        sites = sorted(self._samples.keys() | results.keys())
        out = tuple(SiteStatus(site, self.reading(site), results.get(site)) for site in sites)
        self._statuses = (self.version, out)
        return out

    @property
    def last_seen(self) -> dict[str, int]:
        """Event time of each site's latest sample."""
        return {site: s.event_time for site, s in self._samples.items()}

    def __len__(self) -> int:
        return len(self._samples)
