"""contract.metrics: the endpoint's settings (flags over the environment, off, 0, bad values),
the server (Prometheus text that prometheus_client's parser reads; a taken port is a clear
error), and the series every service shares (consumer lag, Kafka delivery, dead letters)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from contract.kafka.delivery import DeliveryCounts
from contract.metrics import (
    HOST_ENV,
    PORT_ENV,
    PORTS,
    MetricsConfigError,
    MetricsServer,
    add_metrics_arguments,
    consumer_lag,
    dead_letter_family,
    delivery_families,
    lag_family,
    metrics_settings,
    service_registry,
    settings_from_args,
    url_of,
)
from contract.testing.metrics import Scrape, parse, scrape


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_ENV, raising=False)
    monkeypatch.delenv(HOST_ENV, raising=False)


def args_of(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_metrics_arguments(parser, "bridge")
    return parser.parse_args(list(argv))


def test_off_by_default_on_loopback() -> None:
    s = metrics_settings()
    assert s.port is None
    assert not s.enabled
    assert s.host == "127.0.0.1"
    assert s.loopback


@pytest.mark.parametrize(
    ("env", "argv", "port", "host"),
    [
        ({PORT_ENV: "9411"}, [], 9411, "127.0.0.1"),
        ({PORT_ENV: "9411"}, ["--metrics-port", "0"], 0, "127.0.0.1"),
        ({PORT_ENV: "9411"}, ["--metrics-port", "off"], None, "127.0.0.1"),
        ({PORT_ENV: "off"}, [], None, "127.0.0.1"),
        ({PORT_ENV: ""}, [], None, "127.0.0.1"),
        ({HOST_ENV: "0.0.0.0"}, ["--metrics-port", "9411"], 9411, "0.0.0.0"),
        ({HOST_ENV: "0.0.0.0"}, ["--metrics-host", "::1"], None, "::1"),
        ({}, ["--metrics-host", "[::1]", "--metrics-port", "1"], 1, "::1"),
    ],
)
def test_flags_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    argv: list[str],
    port: int | None,
    host: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = settings_from_args(args_of(*argv))
    assert (s.port, s.host) == (port, host)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--metrics-port", "70000"], "less than or equal to 65535"),
        (["--metrics-port", "-1"], "greater than or equal to 0"),
        (["--metrics-port", "http"], "valid integer"),
        (["--metrics-host", "a b"], "not a host"),
        (["--metrics-host", "x/y"], "not a host"),
    ],
)
def test_bad_settings_are_one_readable_error(argv: list[str], says: str) -> None:
    with pytest.raises(MetricsConfigError, match=PORT_ENV) as info:
        settings_from_args(args_of(*argv))
    assert says in str(info.value)


def test_a_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_ENV, "nine")
    with pytest.raises(MetricsConfigError, match="port"):
        metrics_settings()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("192.0.2.1", False), ("prometheus.example", False)],
)  # fmt: skip
def test_loopback_binds_are_recognised(host: str, loopback: bool) -> None:
    assert metrics_settings(host=host).loopback is loopback


def test_urls_bracket_ipv6() -> None:
    assert url_of("127.0.0.1", 9410) == "http://127.0.0.1:9410/metrics"
    assert url_of("::1", 9410) == "http://[::1]:9410/metrics"


def test_the_project_ports_are_distinct() -> None:
    assert len(set(PORTS.values())) == len(PORTS) == 3


class Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # the server's URL
        body: bytes = response.read()
    return body


def test_the_server_serves_text_the_prometheus_parser_reads() -> None:
    registry = service_registry()
    registry.register(Fixed([dead_letter_family({("c1", "BadMagicError"): 2})]))

    async def run() -> tuple[str, Scrape, bytes]:
        server = MetricsServer(registry, metrics_settings(port=0), "unit")
        url = await server.start()
        try:
            page = await asyncio.to_thread(scrape, url)
            index = await asyncio.to_thread(read, url.removesuffix("metrics"))
        finally:
            await server.stop()
        return url, page, index

    url, page, index = asyncio.run(run())
    assert url.startswith("http://127.0.0.1:")
    assert page.types["flowerhub_dead_letters"] == "counter"
    assert page.value("flowerhub_dead_letters_total", error_type="BadMagicError") == 2.0
    assert page.value("process_resident_memory_bytes") > 0
    assert page.has("python_gc_objects_collected")
    assert b"/metrics" in index


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_server_answers_only_get_and_head_of_its_two_paths() -> None:
    registry = CollectorRegistry()
    registry.register(Fixed([dead_letter_family({("c1", "BadMagicError"): 2})]))

    async def run() -> dict[str, bytes]:
        server = MetricsServer(registry, metrics_settings(port=0), "unit")
        url = await server.start()
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        asks = {
            "get": b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
            "head": b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
            "openmetrics": b"GET /metrics HTTP/1.1\r\naccept: application/openmetrics-text;"
            b"version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4\r\n\r\n",
            "post": b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "other": b"GET /admin HTTP/1.0\r\n\r\n",
            "junk": b"\x16\x03\x01 hello\r\n\r\n",
            "huge": b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 40_000 + b"\r\n\r\n",
        }
        try:
            return {k: await asyncio.to_thread(_raw, port, v) for k, v in asks.items()}
        finally:
            await server.stop()

    got = asyncio.run(run())
    head, body = got["get"].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Type: text/plain; version=0.0.4" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert parse(body.decode()).value("flowerhub_dead_letters_total") == 2.0
    assert b"Content-Type: application/openmetrics-text; version=1.0.0" in got["openmetrics"]
    assert got["openmetrics"].endswith(b"# EOF\n")
    assert got["head"].startswith(b"HTTP/1.1 200 OK")
    assert got["head"].endswith(b"\r\n\r\n")  # the headers only
    assert got["post"].startswith(b"HTTP/1.1 405 ")
    assert b"Allow: GET, HEAD" in got["post"]
    assert got["other"].startswith(b"HTTP/1.1 404 ")
    assert got["junk"].startswith(b"HTTP/1.1 400 ")
    assert got["huge"].startswith(b"HTTP/1.1 431 ")


def test_serving_metrics_imports_no_aiohttp_server() -> None:
    """aiohttp.web costs a process ~10 MB; a home's bridge serving /metrics stays without it."""
    code = (
        "import asyncio, sys\n"
        "from contract.metrics import MetricsServer, metrics_settings, service_registry\n"
        "from contract.testing.metrics import scrape\n"
        "async def main():\n"
        "    server = MetricsServer(service_registry(), metrics_settings(port=0), 'x')\n"
        "    url = await server.start()\n"
        "    page = await asyncio.to_thread(scrape, url)\n"
        "    await server.stop()\n"
        "    assert page.value('process_resident_memory_bytes') > 0\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('aiohttp')))\n"
    )
    done = subprocess.run(  # our own code, fixed
        [sys.executable, "-c", code], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "[]"


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def run() -> None:
            server = MetricsServer(CollectorRegistry(), metrics_settings(port=port), "unit")
            await server.start()

        with pytest.raises(MetricsConfigError, match=f"cannot serve /metrics on 127.0.0.1:{port}"):
            asyncio.run(run())


def test_no_server_without_a_port() -> None:
    with pytest.raises(MetricsConfigError, match="no metrics port"):
        MetricsServer(CollectorRegistry(), metrics_settings(), "unit")


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, ends: dict[TP, int | None], gone: frozenset[TP] = frozenset()) -> None:
        self.ends = ends
        self.gone = gone

    def assignment(self) -> set[TP]:
        return set(self.ends) | set(self.gone)

    def highwater(self, tp: TP) -> int | None:
        if tp in self.gone:
            raise RuntimeError("unassigned")
        return self.ends[tp]


def test_lag_is_log_end_minus_committed_where_both_are_known() -> None:
    a, b, c, d = TP("t", 0), TP("t", 1), TP("t", 2), TP("t", 3)
    consumer = FakeConsumer({a: 100, b: None, c: 7}, gone=frozenset({d}))
    rows = sorted(consumer_lag(consumer, {a: 60, b: 5, d: 1}, "g"))
    assert rows == [("g", "t", 0, 40)]  # b: no log end yet; c: nothing committed; d: gone
    assert list(consumer_lag(None, {}, "g")) == []
    page = parse(generate_latest(registry_of(lag_family(rows))).decode())
    assert page.value("flowerhub_consumer_lag_records", group="g", partition="0") == 40


def registry_of(*families: Metric) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(Fixed(list(families)))
    return registry


def test_delivery_series_per_sender() -> None:
    counts = DeliveryCounts(acked=10, failed_batches=2, rejected=1, replaced_producers=1)
    page = parse(generate_latest(registry_of(*delivery_families([("s1", counts, 3)]))).decode())
    assert page.value("flowerhub_kafka_records_acked_total", sender="s1") == 10
    assert page.value("flowerhub_kafka_delivery_failures_total", sender="s1") == 2
    assert page.value("flowerhub_kafka_records_rejected_total", sender="s1") == 1
    assert page.value("flowerhub_kafka_producer_replacements_total", sender="s1") == 1
    assert page.value("flowerhub_kafka_records_pending", sender="s1") == 3


def test_dead_letters_by_consumer_and_error_type() -> None:
    counts: Counter[tuple[str, str]] = Counter({("a", "X"): 1, ("b", "Y"): 4})
    page = parse(generate_latest(registry_of(dead_letter_family(counts))).decode())
    assert page.value("flowerhub_dead_letters_total") == 5
    assert page.value("flowerhub_dead_letters_total", consumer="b", error_type="Y") == 4


def test_a_page_the_parser_refuses_fails() -> None:
    with pytest.raises(ValueError, match=r"float|[Ii]nvalid"):
        parse("flowerhub_x{oops 1\n")
