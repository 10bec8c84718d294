"""The streams worker's Prometheus metrics: every series it exposes, defined here.

``flowerhub streams worker --metrics-port PORT`` (or ``FLOWERHUB_METRICS_PORT``; see
:mod:`contract.metrics` for the host, ``0`` and ``off``) serves them at ``/metrics``.

Nothing is counted here: the agents keep plain counts where things happen (the setpoint
filter's reasons, the dead letters of every agent and of the telemetry service, the batch
consumers' records and commits, the outputs' delivery), and :class:`WorkerCollector` reads
them, the consumers' positions and the site book when Prometheus scrapes. So the hot paths
pay one dict increment per setpoint at most, and the worker's figures stay the bench's.

Series (``flowerhub_`` prefix; counters end in ``_total`` in the exposition):

- ``flowerhub_filter_setpoints_total{reason, outcome}``: every site setpoint the filter
  decided on, by :class:`~streams.steps.setpoint_filter.FilterReason` and what became of it:
  ``written``, ``held`` (held back as its lane's pending setpoint: later DEFERRED, REFRESH or
  EXPIRED, each counted again then), ``unchanged``, ``dropped`` (DUPLICATE, STALE,
  OUT_OF_ORDER, EXPIRED). Every reason is there from the start, at 0;
- ``flowerhub_dead_letters_total{consumer, error_type}`` (:mod:`contract.metrics`);
- ``flowerhub_consumer_lag_records{group, topic, partition}``: the batch consumers'
  (``<app_id>-telemetry``, ``<app_id>-setpoints``) and the Faust agents' (``<app_id>``);
- ``flowerhub_consumer_records_total{group, topic}``: records the batch consumers processed
  (outputs acknowledged, offsets committed);
- ``flowerhub_fleet_sites{state}``: sites in the worker's site book, ``online`` when their
  telemetry is newer than ``allocator.telemetry_max_age_s`` (what the allocator counts),
  else ``offline``;
- ``flowerhub_kafka_*{sender}``: the outputs' per-record acknowledged delivery
  (:func:`contract.metrics.delivery_families`);
- the process, platform and GC series of :func:`contract.metrics.service_registry`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import faust
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
from streams.app import StreamsApp
from streams.steps.setpoint_filter import FilterReason

log = logging.getLogger(__name__)

#: the log line naming the URL (WARNING, like the ready line: shown at every log level)
SERVING = "flowerhub streams worker metrics at"


def faust_consumer_lag(app: faust.App, group: str) -> Iterator[LagRow]:
    """The Faust agents' consumer (Faust 0.15.3 internals, read only: ``App._consumer``,
    created when the app starts, and its ``_committed_offset`` by partition, what Faust
    committed last; no public accessor exists)."""
    consumer = getattr(app, "_consumer", None)
    committed = getattr(consumer, "_committed_offset", None)
    if consumer is not None and committed is not None:
        yield from consumer_lag(consumer, committed, group)


class WorkerCollector(Collector):
    """Reads a built worker's counts and state at scrape time (see the module doc)."""

    def __init__(self, built: StreamsApp) -> None:
        self.built = built

    def collect(self) -> Iterator[Metric]:
        built = self.built
        ctx = built.ctx
        yield self._filter(built.setpoint_filter.reasons)
        yield dead_letter_family(ctx.dead_letters + built.telemetry.dead_letters)
        consumers = [built.telemetry, built.setpoint_filter.consumer]
        rows: list[LagRow] = []
        records = CounterMetricFamily(
            "flowerhub_consumer_records",
            "Records the worker's batch consumers processed (outputs acknowledged by Kafka, "
            "offsets committed)",
            labels=["group", "topic"],
        )
        for consumer in consumers:
            if consumer is None:
                continue
            rows += consumer_lag(consumer.kafka_consumer, consumer.committed, consumer.group)
            records.add_metric([consumer.group, consumer.topic], consumer.records)
        rows += faust_consumer_lag(built.app, ctx.settings.app_id)
        yield lag_family(rows)
        yield records
        yield self._sites()
        name = f"{ctx.settings.app_id} outputs"
        yield from delivery_families([(name, ctx.delivery, len(ctx.unacked()))])

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

    def _sites(self) -> GaugeMetricFamily:
        ctx = self.built.ctx
        max_age = ctx.settings.allocator.telemetry_max_age_s * MICROS_PER_S
        now = ctx.clock()
        seen = self.built.book.last_seen
        online = sum(1 for t in seen.values() if now - t <= max_age)
        family = GaugeMetricFamily(
            "flowerhub_fleet_sites",
            "Sites in the worker's site book: online when their telemetry is newer than "
            "allocator.telemetry_max_age_s (the sites the allocator can use), else offline",
            labels=["state"],
        )
        family.add_metric(["online"], online)
        family.add_metric(["offline"], len(seen) - online)
        return family


class MetricsService(Service):
    """``/metrics`` of a built worker on the worker's loop, started with the app (before the
    tables recover: a worker recovering is visible too) and stopped after it."""

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
