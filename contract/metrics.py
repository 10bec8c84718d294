"""Prometheus ``/metrics`` of the long-running services: where each serves it, the registry each
starts from, and the HTTP server.

Every service (``flowerhub streams worker``, ``flowerhub bridge run``, ``flowerhub gateway
run``) takes the same two settings, as a flag or the environment (the flag wins):

- ``--metrics-port PORT`` / ``FLOWERHUB_METRICS_PORT``: off unless given (``off`` turns it off
  again); ``0`` takes any free port. Off by default because several bridges and gateways run
  on one machine (the demo, the tests, a lab): a fixed default port would stop the second.
  The project's ports (docker-compose.yml, deploy/prometheus.yml, README):
  :data:`PORTS`;
- ``--metrics-host HOST`` / ``FLOWERHUB_METRICS_HOST``: the bind address, ``127.0.0.1`` by
  default. Any other (``0.0.0.0`` in a container, for Prometheus to scrape over the network)
  is allowed and said in the log: the series hold counts, durations and states, no payloads,
  keys or site ids (no site id is ever a label: 1,300 homes would be 1,300 series each).

Each service logs or prints the URL it serves (:attr:`MetricsServer.url`).

Why an aiohttp server on the service's own event loop (prometheus_client's
``make_aiohttp_handler``; aiohttp is a dependency already) rather than prometheus_client's
``start_http_server``: that one serves from a thread of its own, and the services' collectors
read live state at scrape time (outbox depth, consumer positions, the sites' links: nothing is
copied on the hot path), which only the loop's own thread may read safely.

:func:`service_registry` is a fresh registry per service object (not prometheus_client's
process-global ``REGISTRY``: tests and benches build several services in one process) with
the process, platform and garbage-collector collectors every Prometheus client exposes
(``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ``python_gc_*``...).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from aiohttp import web

    from contract.kafka.delivery import DeliveryCounts

log = logging.getLogger(__name__)

ENV_PREFIX = "FLOWERHUB_METRICS_"
PORT_ENV = ENV_PREFIX + "PORT"
HOST_ENV = ENV_PREFIX + "HOST"
DEFAULT_HOST = "127.0.0.1"
#: the project's ports for each service's /metrics (the UI serves it on its own port)
PORTS = {"streams": 9410, "bridge": 9411, "gateway": 9412}
PATH = "/metrics"
_OFF = frozenset({"", "off", "none", "no", "false"})


class MetricsConfigError(ValueError):
    """A metrics setting the service refuses (one readable line)."""


class MetricsSettings(BaseSettings):
    """Where a service serves ``/metrics``: ``port`` None is off, 0 any free port."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    host: Annotated[str, Field(min_length=1)] = DEFAULT_HOST
    port: Annotated[int, Field(ge=0, le=65535)] | None = None

    @field_validator("port", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in _OFF:
            return None
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        host = value.strip()
        if not host or any(c.isspace() for c in host) or "/" in host:
            raise ValueError(f"not a host name or address: {value!r}")
        return host.removeprefix("[").removesuffix("]")

    @property
    def enabled(self) -> bool:
        return self.port is not None

    @property
    def loopback(self) -> bool:
        """Whether the bind address is a loopback one (``localhost`` counts)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def metrics_settings(**given: Any) -> MetricsSettings:
    """Settings from ``given`` (flags) over the environment; MetricsConfigError when bad."""
    try:
        return MetricsSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'metrics'}: {e['msg']}" for e in exc.errors()
        )
        raise MetricsConfigError(
            f"metrics endpoint ({PORT_ENV}/--metrics-port, {HOST_ENV}/--metrics-host): {problems}"
        ) from None


def add_metrics_arguments(parser: argparse.ArgumentParser, service: str) -> None:
    """``--metrics-port`` and ``--metrics-host`` (the same on every service)."""
    group = parser.add_argument_group("metrics (Prometheus /metrics)")
    group.add_argument(
        "--metrics-port",
        metavar="PORT|off",
        help=f"serve Prometheus /metrics on this port ({PORT_ENV}; 0: any free port; the "
        f"project's port for this service: {PORTS[service]}; default: off)",
    )
    group.add_argument(
        "--metrics-host",
        metavar="HOST",
        help=f"bind address of /metrics ({HOST_ENV}; default {DEFAULT_HOST})",
    )


def settings_from_args(args: argparse.Namespace) -> MetricsSettings:
    """The flags of :func:`add_metrics_arguments` over the environment."""
    given = {
        name: value
        for name in ("host", "port")
        if (value := getattr(args, f"metrics_{name}", None)) is not None
    }
    return metrics_settings(**given)


def service_registry() -> CollectorRegistry:
    """A fresh registry with the process, platform and GC collectors."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


# ------------------------------------------------------------ series every service has
# The same names in the streams worker, the bridge and the gateway (Prometheus' ``job`` label
# tells them apart), so one dashboard panel shows them all.

#: (consumer group, topic, partition, records behind)
LagRow = tuple[str, str, int, int]


def consumer_lag(
    consumer: Any, committed: Mapping[Any, int | None], group: str
) -> Iterator[LagRow]:
    """Each assigned partition of a consumer (``assignment()``, ``highwater(tp)``: aiokafka's
    or Faust's) whose log end (as of its last fetch) and committed offset (``committed``: what
    the service committed, by partition) are known: records past the committed offset. A
    partition not fetched or committed yet in this session has no row (nothing to tell)."""
    if consumer is None:
        return
    try:
        assigned = list(consumer.assignment())
    except Exception:  # a consumer stopping or not subscribed yet
        return
    for tp in assigned:
        done, end = committed.get(tp), _highwater(consumer, tp)
        if done is not None and end is not None:
            yield group, tp.topic, tp.partition, max(0, end - int(done))


def _highwater(consumer: Any, tp: Any) -> int | None:
    try:
        end = consumer.highwater(tp)
    except Exception:  # unassigned meanwhile
        return None
    return None if end is None else int(end)


def lag_family(rows: Iterable[LagRow]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "flowerhub_consumer_lag_records",
        "Records on a partition past the consumer group's committed offset (the partition's "
        "log end as of the consumer's last fetch minus the offset the service committed)",
        labels=["group", "topic", "partition"],
    )
    for group, topic, partition, lag in rows:
        family.add_metric([group, topic, str(partition)], lag)
    return family


def delivery_families(senders: Iterable[tuple[str, DeliveryCounts, int]]) -> list[Metric]:
    """Per-record acknowledged Kafka delivery (``contract.kafka.delivery``), per sender name:
    ``(name, counts over its lives, records not acknowledged yet)``."""
    acked = CounterMetricFamily(
        "flowerhub_kafka_records_acked",
        "Records Kafka acknowledged (acks=all)",
        labels=["sender"],
    )
    failed = CounterMetricFamily(
        "flowerhub_kafka_delivery_failures",
        "Batches Kafka did not acknowledge (no leader, timeout, broken producer); their "
        "records are resent",
        labels=["sender"],
    )
    rejected = CounterMetricFamily(
        "flowerhub_kafka_records_rejected",
        "Records Kafka can never take (too large, no such partition): dropped, named in the log",
        labels=["sender"],
    )
    replaced = CounterMetricFamily(
        "flowerhub_kafka_producer_replacements",
        "Broken producers (fenced, sequence broken) replaced by a fresh one",
        labels=["sender"],
    )
    pending = GaugeMetricFamily(
        "flowerhub_kafka_records_pending",
        "Records sent and not acknowledged by Kafka yet",
        labels=["sender"],
    )
    for name, counts, unacked in senders:
        acked.add_metric([name], counts.acked)
        failed.add_metric([name], counts.failed_batches)
        rejected.add_metric([name], counts.rejected)
        replaced.add_metric([name], counts.replaced_producers)
        pending.add_metric([name], unacked)
    return [acked, failed, rejected, replaced, pending]


DEAD_LETTERS = "flowerhub_dead_letters"
DEAD_LETTERS_HELP = (
    "Messages sent to the deadletter topic (undecodable or invalid), by the consumer that "
    "rejected them and the error type (the DeadLetter's consumer and error_type fields)"
)
DEAD_LETTER_LABELS = ("consumer", "error_type")


def dead_letter_family(counts: Mapping[tuple[str, str], int]) -> CounterMetricFamily:
    """``flowerhub_dead_letters_total`` from ``{(consumer, error_type): count}``."""
    family = CounterMetricFamily(DEAD_LETTERS, DEAD_LETTERS_HELP, labels=list(DEAD_LETTER_LABELS))
    for (consumer, error_type), n in sorted(counts.items()):
        family.add_metric([consumer, error_type], n)
    return family


def url_of(host: str, port: int) -> str:
    """``http://host:port/metrics`` (IPv6 addresses in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{PATH}"


class MetricsServer:
    """``GET /metrics`` of ``registry`` on the running loop (``start``/``stop``)."""

    def __init__(self, registry: CollectorRegistry, settings: MetricsSettings, name: str) -> None:
        if settings.port is None:
            raise MetricsConfigError(f"{name}: no metrics port given ({PORT_ENV})")
        self.registry = registry
        self.settings = settings
        self.name = name
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        from aiohttp import web
        from prometheus_client.aiohttp import make_aiohttp_handler

        metrics = make_aiohttp_handler(self.registry)
        name = self.name

        async def index(request: web.Request) -> web.StreamResponse:
            return web.Response(text=f"FlowerHub {name}: Prometheus metrics at {PATH}\n")

        app = web.Application()
        app.router.add_get(PATH, metrics)
        app.router.add_get("/", index)
        return app

    async def start(self) -> str:
        """Bind and serve; the URL (MetricsConfigError when the address cannot be bound)."""
        from aiohttp import web

        settings = self.settings
        assert settings.port is not None  # noqa: S101  # checked in __init__
        runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise MetricsConfigError(
                f"{self.name}: cannot serve {PATH} on {settings.host}:{settings.port}: {exc}"
            ) from None
        self._runner = runner
        port = int(runner.addresses[0][1])
        self.url = url_of(settings.host, port)
        exposed = "" if settings.loopback else " (not loopback: reachable from the network)"
        log.info("%s: Prometheus metrics at %s%s", self.name, self.url, exposed)
        return self.url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
