"""The telemetry service's wiring without a broker: its consumer options (own group, TLS/SASL
as the app's broker credentials, manual commits) and its registration with the app. The
service on the real broker: tests/integration/test_streams_telemetry.py."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

# aiokafka ships no type information
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped, unused-ignore]
from pydantic import SecretStr

from streams.agents.telemetry_service import TelemetryService, consumer_options, group_id
from streams.app import StreamsApp, build
from streams.settings import SaslMechanism, SecurityProtocol, StreamsSettings
from streams.testing.agents import close_app

SECRET = "s3cret"  # noqa: S105  # a test value
SASL = {
    "sasl_mechanism": SaslMechanism.SCRAM_SHA_512,
    "sasl_username": "flowerhub",
    "sasl_password": SecretStr(SECRET),
}


def settings(**fields: Any) -> StreamsSettings:
    fields = {"FLOWERHUB_BOOTSTRAP_SERVERS": "b1:9093,b2:9093", "app_id": "fleet-app", **fields}
    return StreamsSettings(**fields)  # the bootstrap servers by the field's env alias


@pytest.fixture
def built() -> Iterator[StreamsApp]:
    app = build(settings())
    yield app
    close_app(app)


@pytest.mark.parametrize(
    ("protocol", "extra", "tls", "sasl"),
    [
        (SecurityProtocol.PLAINTEXT, {}, False, False),
        (SecurityProtocol.SSL, {}, True, False),
        (SecurityProtocol.SASL_PLAINTEXT, SASL, False, True),
        (SecurityProtocol.SASL_SSL, SASL, True, True),
    ],
)
def test_consumer_options_follow_the_settings(
    protocol: SecurityProtocol, extra: dict[str, Any], tls: bool, sasl: bool
) -> None:
    options = consumer_options(settings(security_protocol=protocol, **extra))
    assert options["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert options["security_protocol"] == protocol.value
    assert options["group_id"] == "fleet-app-telemetry"
    assert options["enable_auto_commit"] is False
    assert options["auto_offset_reset"] == "earliest"
    assert isinstance(options.get("ssl_context"), ssl.SSLContext) is tls
    if sasl:
        assert options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert options["sasl_plain_username"] == "flowerhub"
        assert options["sasl_plain_password"] == SECRET
    else:
        assert "sasl_mechanism" not in options


def test_aiokafka_takes_the_options() -> None:
    async def make() -> str:
        consumer = AIOKafkaConsumer(**consumer_options(settings()))
        try:
            return str(consumer._group_id)
        finally:
            await consumer.stop()

    assert asyncio.run(make()) == "fleet-app-telemetry"


def test_the_service_is_registered_with_the_app(built: StreamsApp) -> None:
    assert isinstance(built.telemetry, TelemetryService)
    services: list[object] = list(built.app._extra_services)
    assert built.telemetry in services
    assert built.telemetry.aggregator is built.aggregator
    assert built.aggregator.book is built.book
    assert built.telemetry.topic == "site.telemetry"
    assert group_id(built.telemetry.settings) == "fleet-app-telemetry"
    # telemetry and setpoints are read by batch consumers; the other inputs are agents
    assert "fleet-aggregator" not in built.app.agents
    assert {"allocator", "command-results", "compliance"} <= set(built.app.agents)
