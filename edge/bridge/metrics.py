"""The edge bridge's Prometheus metrics: every series it exposes, defined here.

``flowerhub bridge run --metrics-port PORT`` (or ``FLOWERHUB_METRICS_PORT``; see
:mod:`contract.metrics` for the host, ``0`` and ``off``) serves them at ``/metrics``.

Two kinds of series. The command histograms are observed as commands go: the pipelines'
``on_trace`` (stage instants, already taken for the latency trace) and ``on_outcome`` hooks,
one observation per command. Everything else is read when Prometheus scrapes
(:class:`BridgeCollector`): the bridge's plain counts (``BridgeStats``), each device's
transport counts (``edge.hal.transport.TransportStats``), the outbox, the links, the
consumer's positions; the Modbus and Kafka paths pay nothing for them.

Series (``flowerhub_`` prefix; counters end in ``_total`` in the exposition; ``oem`` is the
site's register map, never a site id):

- ``flowerhub_bridge_command_latency_seconds{oem}`` (histogram): a command's event time (set
  by the setpoint filter) to its register writes acknowledged by the inverter, as its
  CommandResult's ``latency_ms`` (clocks of two machines: NTP matters);
- ``flowerhub_bridge_command_stage_seconds{stage}`` (histogram): inside the bridge, per
  applied command: ``claim`` (received -> its at-most-once claim durable, queueing
  included), ``plan`` (-> first write handed to the transport: gate, effect, plan, write
  lock), ``write`` (-> every write acknowledged: pacing, gaps, Modbus round trips);
- ``flowerhub_bridge_command_results_total{oem, status}``: CommandResults reported;
- ``flowerhub_bridge_commands_received_total{outcome}``: commands from Kafka or MQTT:
  ``accepted`` (handed to its site), ``not_ours``, ``undecodable``, ``refused`` (REJECTED);
- ``flowerhub_bridge_commands_in_flight``: queued or being applied;
- ``flowerhub_modbus_requests_total{oem}``, ``flowerhub_modbus_errors_total{oem, kind}``
  (``timeout``, ``unreachable``, ``exception``, ``malformed``: ``edge.hal.errors``),
  ``flowerhub_modbus_connects_total{oem}``, ``flowerhub_modbus_request_duration_seconds{oem}``
  (summary: round trips of answered requests);
- ``flowerhub_bridge_sites{oem, state}``: sites by Modbus link state (DeviceStatus's);
- ``flowerhub_outbox_events``, ``flowerhub_outbox_bytes``, ``flowerhub_outbox_dropped_total``,
  ``flowerhub_outbox_limit_events``, ``flowerhub_outbox_limit_bytes``;
- ``flowerhub_bridge_uplink_events_total`` (delivered: Kafka acks or MQTT PUBACKs),
  ``flowerhub_bridge_uplink_up``, ``flowerhub_bridge_mqtt_sessions`` (MQTT uplink);
- ``flowerhub_dead_letters_total``, ``flowerhub_consumer_lag_records`` and the
  ``flowerhub_kafka_*`` delivery series of :mod:`contract.metrics` (Kafka uplink);
- ``flowerhub_bridge_info{bridge_id, uplink}`` = 1, and the process series.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from contract.enums import CommandStatus, DeviceState
from contract.metrics import (
    consumer_lag,
    dead_letter_family,
    delivery_families,
    lag_family,
    service_registry,
)
from edge.bridge.commands import Reported, Trace
from edge.bridge.events import Outcome
from edge.bridge.observe import CommandTrace
from edge.bridge.runtime import Bridge
from edge.hal.capabilities import LinkCounters, LinkCounts
from edge.hal.errors import (
    DeviceTimeoutError,
    DeviceUnreachableError,
    MalformedReplyError,
    ModbusExceptionError,
)

#: end-to-end command latency: a LAN write is ms, a slow dongle or an OEM gap 100s of ms
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: one stage inside the bridge: a sqlite commit is ~1 ms, a write behind a read 10s of ms
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ERROR_KINDS = tuple(
    e.kind
    for e in (DeviceTimeoutError, DeviceUnreachableError, ModbusExceptionError, MalformedReplyError)
)


class BridgeMetrics:
    """The bridge's registry: its histograms (hooked into every site's pipeline) and
    :class:`BridgeCollector`."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.registry = service_registry()
        self.oem_of = {s.site_id: s.oem for s in bridge.config.sites}
        self.latency = Histogram(
            "flowerhub_bridge_command_latency_seconds",
            "Command event time (the setpoint filter's) to its register writes acknowledged "
            "by the inverter (the CommandResult's latency_ms)",
            ["oem"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "flowerhub_bridge_command_stage_seconds",
            "Applied commands inside the bridge, per stage: claim (received -> claim durable), "
            "plan (-> first write handed to the transport), write (-> writes acknowledged)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.results = PromCounter(
            "flowerhub_bridge_command_results",
            "CommandResults reported, by status",
            ["oem", "status"],
            registry=self.registry,
        )
        for oem in sorted(set(self.oem_of.values())):
            self.latency.labels(oem)
            for status in CommandStatus:
                self.results.labels(oem, status.value)
        self._claim = self.stages.labels("claim")
        self._plan = self.stages.labels("plan")
        self._write = self.stages.labels("write")
        self.registry.register(BridgeCollector(bridge))
        for site in bridge.sites.values():
            pipeline = site.commands
            pipeline.on_trace = self._traced(pipeline.on_trace)
            pipeline.on_outcome = self._reported(pipeline.on_outcome)

    def _traced(self, then: Trace | None) -> Trace:
        def trace(t: CommandTrace) -> None:
            self._claim.observe(max(0.0, t.claimed - t.received))
            self._plan.observe(max(0.0, t.sent - t.claimed))
            self._write.observe(max(0.0, t.acked - t.sent))
            if then is not None:
                then(t)

        return trace

    def _reported(self, then: Reported | None) -> Reported:
        def reported(outcome: Outcome) -> None:
            oem = self.oem_of.get(outcome.site_id, "unknown")
            self.results.labels(oem, outcome.status.value).inc()
            if outcome.latency_ms is not None:
                self.latency.labels(oem).observe(max(0.0, outcome.latency_ms / 1000.0))
            if then is not None:
                then(outcome)

        return reported


class BridgeCollector(Collector):
    """Reads a bridge's counts and state at scrape time (see the module doc)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        bridge = self.bridge
        stats = bridge.stats
        yield from self._modbus()
        yield from self._sites()
        yield from self._outbox()
        yield from self._commands()
        uplink = "mqtt" if bridge.mqtt is not None else "kafka"
        info = GaugeMetricFamily(
            "flowerhub_bridge_info",
            "This bridge: its id and uplink",
            labels=["bridge_id", "uplink"],
        )
        info.add_metric([bridge.config.bridge_id, uplink], 1)
        yield info
        yield CounterMetricFamily(
            "flowerhub_bridge_uplink_events",
            "Events the uplink delivered (Kafka acknowledged, or the MQTT broker's PUBACK)",
            value=stats.sent,
        )
        yield GaugeMetricFamily(
            "flowerhub_bridge_uplink_up",
            "1 while the uplink (Kafka, or MQTT: any site connected) is up",
            value=int(stats.kafka_up),
        )
        if bridge.mqtt is not None:
            yield GaugeMetricFamily(
                "flowerhub_bridge_mqtt_sessions",
                "Sites connected to the MQTT broker",
                value=len(bridge.mqtt.sessions),
            )
        yield dead_letter_family(stats.dead_letter_types)
        yield lag_family(consumer_lag(bridge.consumer, bridge.committed, bridge.group_id))
        if bridge.mqtt is None:
            name = f"bridge {bridge.config.bridge_id} outbox"
            yield from delivery_families([(name, bridge.delivery, bridge.sending)])

    def _links(self) -> Iterator[tuple[str, LinkCounts]]:
        """Each site's link counts (a device that keeps none, such as a test's fake, has no
        series)."""
        for ctl in self.bridge.sites.values():
            device = ctl.shared.device
            if isinstance(device, LinkCounters):
                yield ctl.site.oem, device.link_counts()

    def _modbus(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "flowerhub_modbus_requests",
            "Modbus requests sent to the inverters, per register map",
            labels=["oem"],
        )
        errors = CounterMetricFamily(
            "flowerhub_modbus_errors",
            "Failed Modbus calls, by kind: timeout (no reply in the map's timeout), "
            "unreachable (connect refused or lost, or backing off), exception (a Modbus "
            "exception reply), malformed",
            labels=["oem", "kind"],
        )
        connects = CounterMetricFamily(
            "flowerhub_modbus_connects", "Modbus TCP connection attempts", labels=["oem"]
        )
        rtt = SummaryMetricFamily(
            "flowerhub_modbus_request_duration_seconds",
            "Round trips of answered Modbus requests",
            labels=["oem"],
        )
        per_oem: dict[str, list[LinkCounts]] = {}
        for oem, st in self._links():
            per_oem.setdefault(oem, []).append(st)
        for oem, rows in sorted(per_oem.items()):
            requests.add_metric([oem], sum(s.requests for s in rows))
            kinds: Counter[str] = Counter()
            for s in rows:
                kinds.update(s.errors)
            for kind in sorted(set(ERROR_KINDS) | set(kinds)):
                errors.add_metric([oem, kind], kinds.get(kind, 0))
            connects.add_metric([oem], sum(s.connects for s in rows))
            rtt.add_metric([oem], sum(s.replies for s in rows), sum(s.rtt_sum_s for s in rows))
        return iter([requests, errors, connects, rtt])

    def _sites(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "flowerhub_bridge_sites",
            "Sites by the state of their Modbus link (as DeviceStatus reports it)",
            labels=["oem", "state"],
        )
        counts: Counter[tuple[str, DeviceState]] = Counter(
            (ctl.site.oem, ctl.link_state()) for ctl in self.bridge.sites.values()
        )
        for oem in sorted({ctl.site.oem for ctl in self.bridge.sites.values()}):
            for state in DeviceState:
                family.add_metric([oem, state.value], counts.get((oem, state), 0))
        yield family

    def _outbox(self) -> Iterator[Metric]:
        outbox = self.bridge.outbox
        limits = self.bridge.config.outbox
        yield GaugeMetricFamily(
            "flowerhub_outbox_events", "Events in the outbox, not delivered yet", value=outbox.depth
        )
        yield GaugeMetricFamily(
            "flowerhub_outbox_bytes", "Bytes of the events in the outbox", value=outbox.size_bytes
        )
        yield CounterMetricFamily(
            "flowerhub_outbox_dropped",
            "Bulk events (telemetry, status) dropped at the outbox's bound, oldest first",
            value=outbox.dropped,
        )
        yield GaugeMetricFamily(
            "flowerhub_outbox_limit_events",
            "The outbox's bound in events (bulk events are dropped beyond it)",
            value=limits.max_events,
        )
        yield GaugeMetricFamily(
            "flowerhub_outbox_limit_bytes",
            "The outbox's bound in bytes (bulk events are dropped beyond it)",
            value=limits.max_bytes,
        )

    def _commands(self) -> Iterator[Metric]:
        stats = self.bridge.stats
        received = CounterMetricFamily(
            "flowerhub_bridge_commands_received",
            "Commands from the downlink: accepted (handed to its site), not_ours (another "
            "bridge's site), undecodable, refused (REJECTED with the reason)",
            labels=["outcome"],
        )
        other = stats.skipped_not_ours + stats.undecodable + stats.refused
        received.add_metric(["accepted"], max(0, stats.consumed - other))
        received.add_metric(["not_ours"], stats.skipped_not_ours)
        received.add_metric(["undecodable"], stats.undecodable)
        received.add_metric(["refused"], stats.refused)
        yield received
        sites = self.bridge.sites.values()
        yield GaugeMetricFamily(
            "flowerhub_bridge_commands_in_flight",
            "Commands queued at their site or being applied",
            value=sum(c.commands.queued + int(c.commands.applying) for c in sites),
        )
