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

Why a small responder on the service's own event loop (:class:`MetricsServer`, asyncio
streams) rather than prometheus_client's ``start_http_server`` or aiohttp's server: the first
serves from a thread of its own, and the services' collectors read live state at scrape time
(outbox depth, consumer positions, the sites' links: nothing is copied on the hot path), which
only the loop's own thread may read safely; the second costs a home's bridge ~10 MB of RSS.

:func:`service_registry` is a fresh registry per service object (not prometheus_client's
process-global ``REGISTRY``: tests and benches build several services in one process) with
the process, platform and garbage-collector collectors every Prometheus client exposes
(``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ``python_gc_*``...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from prometheus_client.exposition import choose_encoder
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from contract.kafka.delivery import DeliveryCounts

log = logging.getLogger(__name__)

ENV_PREFIX = "FLOWERHUB_METRICS_"
PORT_ENV = ENV_PREFIX + "PORT"
HOST_ENV = ENV_PREFIX + "HOST"
DEFAULT_HOST = "127.0.0.1"
#: the project's ports for each service's /metrics
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


#: a scrape request's line and headers: at most this many bytes, read within this time
REQUEST_LIMIT = 16 * 1024
REQUEST_TIMEOUT_S = 10.0


class MetricsServer:
    """``GET /metrics`` of ``registry`` on the running loop (``start``/``stop``); ``GET /``
    names it; anything else is 404 (405 for a method other than GET/HEAD).

    An HTTP/1.1 responder on asyncio streams (one response per connection, then closed)
    rather than aiohttp's server or prometheus_client's: importing ``aiohttp.web`` costs a
    process ~10 MB (measured: a one-site bridge 54 -> 65 MB, over its 60 MB goal), and
    prometheus_client's server answers from a thread of its own while the collectors read
    state only the loop's thread may touch. The page itself is prometheus_client's, in the
    format the scraper's Accept header asks for (``choose_encoder``: text 0.0.4 unless it
    asks for OpenMetrics or text 1.0.0)."""

    def __init__(self, registry: CollectorRegistry, settings: MetricsSettings, name: str) -> None:
        if settings.port is None:
            raise MetricsConfigError(f"{name}: no metrics port given ({PORT_ENV})")
        self.registry = registry
        self.settings = settings
        self.name = name
        self.url: str | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Bind and serve; the URL (MetricsConfigError when the address cannot be bound)."""
        settings = self.settings
        assert settings.port is not None  # noqa: S101  # checked in __init__
        try:
            server = await asyncio.start_server(
                self._connected, settings.host, settings.port, limit=REQUEST_LIMIT
            )
        except OSError as exc:
            raise MetricsConfigError(
                f"{self.name}: cannot serve {PATH} on {settings.host}:{settings.port}: {exc}"
            ) from None
        self._server = server
        port = int(server.sockets[0].getsockname()[1])
        self.url = url_of(settings.host, port)
        exposed = "" if settings.loopback else " (not loopback: reachable from the network)"
        log.info("%s: Prometheus metrics at %s%s", self.name, self.url, exposed)
        return self.url

    async def stop(self) -> None:
        """Stop listening; scrapes still being answered are cut off."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await asyncio.wait_for(self._answer(reader, writer), REQUEST_TIMEOUT_S)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a client gone, too slow or talking nonsense: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            writer.write(_response(431, "text/plain", b"request header too large\n"))
            return
        lines = head.decode("latin-1").split("\r\n")
        request = lines[0].split()
        if len(request) != 3 or not request[2].startswith("HTTP/1."):
            writer.write(_response(400, "text/plain", b"not an HTTP/1.x request\n"))
            return
        method, target = request[0], request[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            status, kind, body = 405, "text/plain", f"{method} not allowed\n".encode()
        elif target == PATH:  # the format the scraper asks for, as prometheus_client's servers
            accept = next(
                (v for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "accept"),
                "",
            )
            encoder, kind = choose_encoder(accept.strip())
            status, body = 200, encoder(self.registry)
        elif target == "/":
            text = f"FlowerHub {self.name}: Prometheus metrics at {PATH}\n"
            status, kind, body = 200, "text/plain; charset=utf-8", text.encode()
        else:
            status, kind, body = 404, "text/plain", f"no {target} here; see {PATH}\n".encode()
        writer.write(_response(status, kind, body, with_body=method != "HEAD"))
        await writer.drain()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
}


def _response(status: int, kind: str, body: bytes, *, with_body: bool = True) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\n"
        + ("Allow: GET, HEAD\r\n" if status == 405 else "")
        + "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (body if with_body else b"")
