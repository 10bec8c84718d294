"""The gateway's Prometheus metrics: every series it exposes, defined here.

``flowerhub gateway run --metrics-port PORT`` (or ``FLOWERHUB_METRICS_PORT``; see
:mod:`contract.metrics` for the host, ``0`` and ``off``) serves them at ``/metrics``. Nothing
is counted here: :class:`GatewayCollector` reads the gateway's plain counts
(``GatewayStats``) and its command consumer's positions when Prometheus scrapes.

Series (``flowerhub_`` prefix; counters end in ``_total`` in the exposition):

- uplink (homes -> Kafka): ``flowerhub_gateway_uplink_received_total`` (MQTT messages taken),
  ``flowerhub_gateway_uplink_produced_total{topic}`` (routed to a Kafka topic),
  ``flowerhub_gateway_uplink_acknowledged_total`` (Kafka acknowledged, then PUBACKed),
  ``flowerhub_gateway_uplink_in_hand`` (taken and not acknowledged yet);
- downlink (Kafka -> homes): ``flowerhub_gateway_downlink_received_total`` (commands
  consumed), ``flowerhub_gateway_downlink_published_total`` (PUBACKed by the MQTT broker);
- ``flowerhub_gateway_connected`` (1 while a session is up), ``flowerhub_gateway_sessions_total``,
  ``flowerhub_gateway_session_failures_total{error_type}`` (a session ended by an MQTT or Kafka
  error: a Kafka delivery that failed ends the session, its messages are taken again);
- ``flowerhub_dead_letters_total{consumer, error_type}`` and
  ``flowerhub_consumer_lag_records{group, topic, partition}`` (:mod:`contract.metrics`);
- ``flowerhub_gateway_info{name, identity}`` = 1, and the process series.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contract.metrics import consumer_lag, dead_letter_family, lag_family, service_registry
from flowerhub.gateway.service import Gateway


class GatewayCollector(Collector):
    """Reads a gateway's counts and state at scrape time (see the module doc)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gw = self.gateway
        stats = gw.stats
        info = GaugeMetricFamily(
            "flowerhub_gateway_info", "This gateway instance", labels=["name", "identity"]
        )
        info.add_metric([gw.name, gw.identity], 1)
        yield info
        yield GaugeMetricFamily(
            "flowerhub_gateway_connected",
            "1 while a session (MQTT and Kafka connected, subscribed) is up",
            value=int(gw.ready.is_set()),
        )
        yield CounterMetricFamily(
            "flowerhub_gateway_sessions", "Sessions started", value=stats.sessions
        )
        failures = CounterMetricFamily(
            "flowerhub_gateway_session_failures",
            "Sessions ended by an error (MQTT, Kafka, a failed delivery), by its type",
            labels=["error_type"],
        )
        for error_type, n in sorted(stats.session_failures.items()):
            failures.add_metric([error_type], n)
        yield failures
        yield CounterMetricFamily(
            "flowerhub_gateway_uplink_received",
            "Uplink MQTT messages taken from the broker",
            value=stats.uplink_in,
        )
        produced = CounterMetricFamily(
            "flowerhub_gateway_uplink_produced",
            "Uplink messages routed to their Kafka topic (sent; acknowledged below)",
            labels=["topic"],
        )
        for topic, n in sorted(stats.by_topic.items()):
            produced.add_metric([topic], n)
        yield produced
        yield CounterMetricFamily(
            "flowerhub_gateway_uplink_acknowledged",
            "Uplink messages Kafka acknowledged and the gateway then PUBACKed",
            value=stats.uplink_to_kafka,
        )
        yield GaugeMetricFamily(
            "flowerhub_gateway_uplink_in_hand",
            "Uplink messages taken and not acknowledged yet",
            value=gw.in_hand,
        )
        yield CounterMetricFamily(
            "flowerhub_gateway_downlink_received",
            "Commands consumed from Kafka",
            value=stats.downlink_in,
        )
        yield CounterMetricFamily(
            "flowerhub_gateway_downlink_published",
            "Commands published to a home's MQTT topic and PUBACKed by the broker",
            value=stats.downlink_published,
        )
        yield dead_letter_family(stats.dead_letter_types)
        yield lag_family(consumer_lag(gw.consumer, gw.committed, gw.group_id))


def gateway_registry(gateway: Gateway) -> CollectorRegistry:
    """The gateway's registry: the process series and :class:`GatewayCollector`."""
    registry = service_registry()
    registry.register(GatewayCollector(gateway))
    return registry
