"""The worker's view of the fleet's sites: latest telemetry and command result per site.

Fed by the telemetry step (``streams.agents.aggregator``, run by the worker's telemetry
service) and the command-result agent
(``streams.agents.allocator``); read by the allocator (``statuses()``), the setpoint filter
(``limits(site_id)``) and live compliance (``last_seen``).

Design and its limits: fleet-level decisions (allocation, fleet aggregates, stale sites)
need every site, while ``site.telemetry`` is partitioned by ``site_id``. The book is plain
memory per worker, so it holds the sites of the ``site.telemetry`` partitions this worker
owns: the fleet app therefore runs as ONE worker for the fleet (its telemetry consumer group
then holds every partition). 1,300 sites at 1 Hz is ~1.3k events/s; the worker's batched
telemetry service takes a few hundred thousand per second (bench_streams ``telemetry_worker``),
so a backlog after an outage is read quickly. A restarted worker rebuilds the
book within ``telemetry_max_age_s`` from live telemetry (older telemetry counts as OFFLINE
anyway). Scaling past one worker needs two stages: per-partition partial aggregates and
site status published to a fleet-keyed internal topic (or a Faust GlobalTable), which this
module's interface (``update_*``, ``statuses``) would keep unchanged.

Hot path: ``update_plain_telemetry`` keeps the decoded dict as it is (a SiteTelemetry for a
site is built only when the book is read, and only for sites that changed since, with
``SiteTelemetry.from_plain``: the record was checked on the way in): at 1 Hz per site, most
records are replaced before anybody reads them. The telemetry step's batch path goes one
step further (``update_plain_batch``): the book keeps the batch's row numbers and its
columns, and materialises the records (the raw codec's dicts) when it is read or when the
next batch arrives, for the sites that batch does not replace (one batch held at most).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from contract.records import CommandResult, SiteTelemetry
from streams.steps.availability import SiteStatus
from streams.steps.setpoint_filter import SiteLimits


class RecordSource(Protocol):
    """Where a batch's records are until read (``telemetry_columns.TelemetryColumns``)."""

    def telemetry(self, rows: npt.NDArray[np.intp]) -> list[SiteTelemetry]:
        """The rows' SiteTelemetry (``SiteTelemetry.from_plain`` of their records)."""
        ...


class SiteBook:
    """Latest telemetry and command result per site (newest event time wins)."""

    def __init__(self) -> None:
        self._telemetry: dict[str, SiteTelemetry] = {}
        self._plain: dict[str, Mapping[str, Any]] = {}  # newer than _telemetry, not yet built
        self._deferred: dict[str, int] = {}  # newer than _plain: rows of _source, not yet read
        self._source: RecordSource | None = None
        self._seen: dict[str, int] = {}  # event time of each site's latest telemetry
        self.results: dict[str, CommandResult] = {}
        self.version = 0
        self._statuses: tuple[int, tuple[SiteStatus, ...]] | None = None
        self._limits: dict[str, tuple[SiteTelemetry, SiteLimits]] = {}

    @property
    def telemetry(self) -> dict[str, SiteTelemetry]:
        """The latest SiteTelemetry per site."""
        self._settle()
        if self._plain:
            for site_id, record in self._plain.items():
                self._telemetry[site_id] = SiteTelemetry.from_plain(record)
            self._plain.clear()
        return self._telemetry

    def update_telemetry(self, record: Mapping[str, Any]) -> SiteTelemetry:
        """Keep a decoded SiteTelemetry if it is the site's newest (``InvalidRecordError``
        when it is not a valid one)."""
        tel = SiteTelemetry.from_record(record)
        prev = self._seen.get(tel.site_id)
        if prev is None or tel.event_time >= prev:
            self._telemetry[tel.site_id] = tel
            self._plain.pop(tel.site_id, None)
            self._deferred.pop(tel.site_id, None)
            self._seen[tel.site_id] = tel.event_time
            self.version += 1
        return tel

    def update_plain_telemetry(
        self, site_id: str, event_time: int, record: Mapping[str, Any]
    ) -> None:
        """``update_telemetry`` of a record ``records_site.telemetry_plainly_valid`` accepted:
        kept as it is (the book owns it from now on); built into a SiteTelemetry when read."""
        prev = self._seen.get(site_id)
        if prev is None or event_time >= prev:
            self._plain[site_id] = record
            self._deferred.pop(site_id, None)
            self._seen[site_id] = event_time
            self.version += 1

    def update_plain_batch(
        self,
        latest: Iterable[tuple[str, int, int]],
        source: RecordSource,
        updates: int,
    ) -> None:
        """The net effect of a batch's ``update_plain_telemetry`` calls in order, of which
        ``updates`` were accepted: ``latest`` holds, per site updated, the (site, event time,
        row of ``source``) it accepted last (``telemetry_columns.latest_per_site`` finds
        them). The records stay in ``source`` until read: the book holds one batch's
        ``source`` at most (the previous batch's rows not replaced are materialised now)."""
        latest = list(latest)
        if self._deferred:
            for site_id, _, _ in latest:
                self._deferred.pop(site_id, None)  # replaced: never materialised
            self._settle()
        for site_id, event_time, row in latest:
            self._plain.pop(site_id, None)
            self._deferred[site_id] = row
            self._seen[site_id] = event_time
        self._source = source
        self.version += updates

    def _settle(self) -> None:
        """Build the deferred records' SiteTelemetry (straight from the batch's columns)."""
        if self._deferred and self._source is not None:
            sites = list(self._deferred)
            rows = np.fromiter(self._deferred.values(), np.intp, len(sites))
            self._telemetry.update(zip(sites, self._source.telemetry(rows), strict=True))
        self._deferred.clear()
        self._source = None

    def update_result(self, record: Mapping[str, Any]) -> CommandResult:
        result = CommandResult.from_record(record)
        prev = self.results.get(result.site_id)
        if prev is None or result.event_time >= prev.event_time:
            self.results[result.site_id] = result
            self.version += 1
        return result

    def statuses(self) -> tuple[SiteStatus, ...]:
        """One SiteStatus per known site (sites with telemetry or a result), by site_id; the
        same tuple again while the book has not changed (several fleet requests in a row,
        one per product, split over the same book)."""
        cached = self._statuses
        if cached is not None and cached[0] == self.version:
            return cached[1]
        telemetry = self.telemetry
        results = self.results
        sites = telemetry.keys() | results.keys()
        out = tuple(
            SiteStatus(site, telemetry.get(site), results.get(site)) for site in sorted(sites)
        )
        self._statuses = (self.version, out)
        return out

    def limits(self, site_id: str) -> SiteLimits | None:
        """The limits the site last reported, None when unknown (built once per telemetry:
        the setpoint filter asks per setpoint, three times per home for three products)."""
        if site_id in self._deferred:
            self._settle()
        plain = self._plain.pop(site_id, None)
        if plain is not None:
            self._telemetry[site_id] = SiteTelemetry.from_plain(plain)
        tel = self._telemetry.get(site_id)
        if tel is None:
            return None
        cached = self._limits.get(site_id)
        if cached is not None and cached[0] is tel:
            return cached[1]
        limits = SiteLimits.from_telemetry(tel)
        self._limits[site_id] = (tel, limits)
        return limits

    @property
    def last_seen(self) -> dict[str, int]:
        """Event time of each site's latest telemetry."""
        return dict(self._seen)
