"""The streams worker's Prometheus metrics: every series it exposes, defined here.

``flowerhub streams worker --metrics-port PORT`` (or ``FLOWERHUB_METRICS_PORT``; see
:mod:`contract.metrics` for the host, ``0`` and ``off``) serves them at ``/metrics``.

Nothing is counted here: the worker's two services keep plain counts where things happen
(``SiteTasks``: the setpoint filter's reasons, dead letters, records done, late telemetry,
its committed offsets and its outputs' delivery; ``FleetLeader``: its leads' dead letters,
the lead itself and the leader's book), and :class:`WorkerCollector` reads them, the
consumers' positions and the book when Prometheus scrapes. So the hot paths pay one dict
increment per cycle at most, and the worker's figures stay the bench's.

Every worker of an app serves its own page; sum over the workers for the fleet (each
setpoint, record and dead letter is counted by the one worker that handled it; the fleet's
sites by the leader only).

Series (``flowerhub_`` prefix; counters end in ``_total`` in the exposition):

- ``flowerhub_filter_setpoints_total{reason, outcome}``: every site setpoint the filter of
  this worker's partitions decided on, by :class:`~streams.steps.setpoint_filter.FilterReason`
  and what became of it: ``written``, ``held`` (held back as its lane's pending setpoint:
  later DEFERRED, REFRESH or EXPIRED, each counted again then), ``unchanged``, ``dropped``
  (DUPLICATE, STALE, OUT_OF_ORDER, EXPIRED). Every reason is there from the start, at 0;
- ``flowerhub_dead_letters_total{consumer, error_type}`` (:mod:`contract.metrics`): the
  site tasks' (``site-tasks``'s telemetry decoder ``fleet-aggregator``, the
  ``setpoint-filter``) and the leader's (``fleet-leader``);
- ``flowerhub_consumer_lag_records{group, topic, partition}``: the site tasks' group
  (``<app_id>-sites``: records past its committed offset) and, on the worker that leads, its
  inputs (group label ``<app_id>-leader``: records past the lead's position);
- ``flowerhub_consumer_records_total{group, topic}``: records the site tasks processed
  (outputs acknowledged, offsets committed);
- ``flowerhub_telemetry_late_records_total``: telemetry records dropped as late (their
  window had closed in their partition's stream time) on the partitions this worker owned;
- ``flowerhub_worker_leading``: 1 on the worker that leads the fleet-level work now, else 0;
- ``flowerhub_fleet_sites{state}``: on the worker that leads, the sites in the leader's
  book, ``online`` when their telemetry is newer than ``allocator.telemetry_max_age_s`` at
  the lead's event time (what the allocator counts), else ``offline``; 0 on the others;
- ``flowerhub_kafka_*{sender}``: the site tasks' per-record acknowledged delivery
  (:func:`contract.metrics.delivery_families`; the leader's outputs are transactional);
- the process, platform and GC series of :func:`contract.metrics.service_registry`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from mode import Service
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contract.fields import MICROS_PER_S
from contract.metrics import (
    LagRow,
    MetricsServer,
    MetricsSettings,
    consumer_lag,
    dead_letter_family,
    delivery_families,
    lag_family,
    service_registry,
)
from streams.agents.groups import group_id
from streams.app import StreamsApp
from streams.steps.leader_core import LeaderCore
from streams.steps.setpoint_filter import FilterReason

log = logging.getLogger(__name__)

#: the log line naming the URL (WARNING, like the ready line: shown at every log level)
SERVING = "flowerhub streams worker metrics at"


class WorkerCollector(Collector):
    """Reads a built worker's counts and state at scrape time (see the module doc)."""

    def __init__(self, built: StreamsApp) -> None:
        self.built = built

    def collect(self) -> Iterator[Metric]:
        built = self.built
        tasks, leader = built.site_tasks, built.leader
        app_id = built.settings.app_id
        leading = leader.leading if leader.is_leader else None
        yield self._filter(tasks.reasons)
        yield dead_letter_family(tasks.dead_letters + leader.dead_letters)
        group = group_id(built.settings)
        rows: list[LagRow] = list(consumer_lag(tasks.consumer, tasks.committed, group))
        if leading is not None:
            rows += consumer_lag(leading.consumer, leading.positions, f"{app_id}-leader")
        yield lag_family(rows)
        records = CounterMetricFamily(
            "flowerhub_consumer_records",
            "Records the worker's site tasks processed (outputs acknowledged by Kafka, "
            "offsets committed)",
            labels=["group", "topic"],
        )
        for topic in (tasks.telemetry_topic, tasks.setpoints_topic):
            records.add_metric([group, topic], tasks.records_done[topic])
        yield records
        yield CounterMetricFamily(
            "flowerhub_telemetry_late_records",
            "Telemetry records dropped as late: their window had closed in their partition's "
            "stream time (aggregation.idle_s after the partition fell silent)",
            value=tasks.late_total,
        )
        yield GaugeMetricFamily(
            "flowerhub_worker_leading",
            "1 on the worker that leads the fleet-level work (FleetStates, allocation, live "
            "compliance) now, else 0",
            value=1 if leading is not None else 0,
        )
        yield self._sites(leading.core if leading is not None else None)
        name = f"{group} outputs"
        yield from delivery_families([(name, tasks.delivery, len(tasks.unacked()))])

    @staticmethod
    def _filter(reasons: Counter[FilterReason]) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "flowerhub_filter_setpoints",
            "Site setpoints the setpoint filter decided on, by reason and outcome (written, "
            "held back as pending, unchanged, dropped)",
            labels=["reason", "outcome"],
        )
        for reason in FilterReason:
            family.add_metric([reason.value, reason.outcome], reasons.get(reason, 0))
        return family

    def _sites(self, core: LeaderCore | None) -> GaugeMetricFamily:
        online = offline = 0
        if core is not None and core.clock is not None:
            max_age = round(self.built.settings.allocator.telemetry_max_age_s * MICROS_PER_S)
            stale = len(core.book.stale(core.clock - max_age))
            online, offline = len(core.book) - stale, stale
        family = GaugeMetricFamily(
            "flowerhub_fleet_sites",
            "Sites in the leader's book (0 on a worker that does not lead): online when their "
            "telemetry is newer than allocator.telemetry_max_age_s at the lead's event time "
            "(the sites the allocator can use), else offline",
            labels=["state"],
        )
        family.add_metric(["online"], online)
        family.add_metric(["offline"], offline)
        return family


class MetricsService(Service):
    """``/metrics`` of a built worker on the worker's loop, started with the app and stopped
    after it."""

    def __init__(self, built: StreamsApp, settings: MetricsSettings, **kwargs: Any) -> None:
        self.registry = service_registry()
        self.registry.register(WorkerCollector(built))
        self.server = MetricsServer(self.registry, settings, "streams worker")
        super().__init__(**kwargs)

    @property
    def url(self) -> str | None:
        return self.server.url

    async def on_start(self) -> None:
        url = await self.server.start()
        log.warning("%s %s", SERVING, url)

    async def on_stop(self) -> None:
        await self.server.stop()


def serve(built: StreamsApp, settings: MetricsSettings) -> MetricsService | None:
    """Serve ``built``'s metrics while its app runs (None when ``settings`` say off)."""
    if not settings.enabled:
        return None
    service = MetricsService(built, settings, beacon=built.app.beacon)
    built.app.add_dependency(service)
    return service
