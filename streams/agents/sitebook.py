"""The worker's view of the fleet's sites: latest telemetry and command result per site.

Fed by the telemetry agent (``streams.agents.aggregator``) and the command-result agent
(``streams.agents.allocator``); read by the allocator (``statuses()``), the setpoint filter
(``limits(site_id)``) and live compliance (``last_seen``).

Design and its limits: fleet-level decisions (allocation, fleet aggregates, stale sites)
need every site, while ``site.telemetry`` is partitioned by ``site_id``. The book is plain
memory per worker, so it holds the sites of the ``site.telemetry`` partitions this worker
owns: the fleet app therefore runs as ONE worker for the fleet (Faust then assigns it every
partition). That is ample here: 1,300 sites at 1 Hz is ~1.3k events/s, a few percent of
one worker's measured decode+aggregate rate (bench_streams). A restarted worker rebuilds the
book within ``telemetry_max_age_s`` from live telemetry (older telemetry counts as OFFLINE
anyway). Scaling past one worker needs two stages: per-partition partial aggregates and
site status published to a fleet-keyed internal topic (or a Faust GlobalTable), which this
module's interface (``update_*``, ``statuses``) would keep unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.steps.availability import SiteStatus
from streams.steps.records_site import CommandResult, SiteTelemetry
from streams.steps.setpoint_filter import SiteLimits


@dataclass
class SiteBook:
    """Latest telemetry and command result per site (newest event time wins)."""

    telemetry: dict[str, SiteTelemetry] = field(default_factory=dict)
    results: dict[str, CommandResult] = field(default_factory=dict)
    version: int = 0

    def update_telemetry(self, record: Mapping[str, Any]) -> SiteTelemetry:
        """Keep a decoded SiteTelemetry if it is the site's newest (``InvalidRecordError``
        when it is not a valid one)."""
        tel = SiteTelemetry.from_record(record)
        prev = self.telemetry.get(tel.site_id)
        if prev is None or tel.event_time >= prev.event_time:
            self.telemetry[tel.site_id] = tel
            self.version += 1
        return tel

    def update_result(self, record: Mapping[str, Any]) -> CommandResult:
        result = CommandResult.from_record(record)
        prev = self.results.get(result.site_id)
        if prev is None or result.event_time >= prev.event_time:
            self.results[result.site_id] = result
            self.version += 1
        return result

    def statuses(self) -> list[SiteStatus]:
        """One SiteStatus per known site (sites with telemetry or a result)."""
        sites = self.telemetry.keys() | self.results.keys()
        return [
            SiteStatus(site, self.telemetry.get(site), self.results.get(site))
            for site in sorted(sites)
        ]

    def limits(self, site_id: str) -> SiteLimits | None:
        """The limits the site last reported, None when unknown."""
        tel = self.telemetry.get(site_id)
        return None if tel is None else SiteLimits.from_telemetry(tel)

    @property
    def last_seen(self) -> dict[str, int]:
        """Event time of each site's latest telemetry."""
        return {site: tel.event_time for site, tel in self.telemetry.items()}
