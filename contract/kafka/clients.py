"""Every Kafka client of the project comes from here: producer, consumer, admin, metadata.

Each factory applies the connection settings (bootstrap servers, TLS context, SASL, client
id) and the project's defaults, with per-call keyword overrides on top (any aiokafka
option). Factories return clients that are not started yet, so a service keeps its own
start/stop and retry loop; :func:`start` starts one and turns aiokafka's bare "Unable to
bootstrap" into a :class:`KafkaUnreachableError` that says why (certificate not trusted,
wrong password, nothing listening, TLS spoken to a plaintext listener...).

The project's defaults:

- producer: ``acks="all"`` with idempotence (no duplicate or reordered records on retries;
  aiokafka turns idempotence off by itself for nothing, so it is usable everywhere);
- consumer: manual commits (every consumer of the project commits after its work is
  durable, or never), ``auto_offset_reset="earliest"`` (nothing read is skipped);
- admin and metadata clients: the settings only.

This is the place for the next connection-wide policies (issue 15): a producer that
acknowledges each record before the caller moves on goes beside :func:`producer`, and
replication that follows the cluster lives in :mod:`contract.kafka.admin`
(:func:`~contract.kafka.admin.replication_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

# aiokafka ships no py.typed (unused-ignore: pyproject may list it later)
import aiokafka  # type: ignore[import-untyped, unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]
from aiokafka.conn import create_conn  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]
from aiokafka.protocol.metadata import MetadataRequest  # type: ignore[import-untyped, unused-ignore]

from contract.kafka import redact
from contract.kafka.settings import KafkaSettings, where

redact.install()  # before any client exists: no SASL credentials in aiokafka's debug log

PRODUCER_DEFAULTS: Mapping[str, Any] = {"acks": "all", "enable_idempotence": True}
CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
}
DIAGNOSE_TIMEOUT_S = 10.0


class KafkaUnreachableError(ConnectionError):
    """A client could not connect; the message says where, how and why (never a secret)."""


def producer_options(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """``AIOKafkaProducer`` keyword options: settings, project defaults, then ``overrides``
    (holds the SASL password in clear when SASL is on: pass it on, never log it)."""
    return {**kafka.auth_options(), **PRODUCER_DEFAULTS, **overrides}


def consumer_options(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """``AIOKafkaConsumer`` keyword options (see :func:`producer_options`)."""
    return {**kafka.auth_options(), **CONSUMER_DEFAULTS, **overrides}


def producer(kafka: KafkaSettings, **overrides: Any) -> Any:
    """An ``AIOKafkaProducer`` (not started; see :func:`start`)."""
    return aiokafka.AIOKafkaProducer(**producer_options(kafka, **overrides))


def consumer(kafka: KafkaSettings, *topics: str, **overrides: Any) -> Any:
    """An ``AIOKafkaConsumer`` subscribed to ``topics`` (none: assign partitions yourself)."""
    return aiokafka.AIOKafkaConsumer(*topics, **consumer_options(kafka, **overrides))


def admin(kafka: KafkaSettings, **overrides: Any) -> Any:
    """An ``AIOKafkaAdminClient`` (not started; see :func:`start`)."""
    return AIOKafkaAdminClient(**{**kafka.auth_options(), **overrides})


def metadata_client(kafka: KafkaSettings, **overrides: Any) -> Any:
    """A bare ``AIOKafkaClient`` for metadata requests (``bootstrap()`` it via :func:`start`)."""
    return aiokafka.AIOKafkaClient(**{**kafka.auth_options(), **overrides})


async def _stop(client: Any) -> None:
    stop = getattr(client, "stop", None) or client.close
    with contextlib.suppress(Exception):
        await stop()


async def start(client: Any, kafka: KafkaSettings) -> None:
    """Start a client made by a factory (``start()``, or ``bootstrap()`` for a metadata
    client). When it cannot connect, the client is closed again and a
    :class:`KafkaUnreachableError` says why."""
    begin = getattr(client, "start", None) or client.bootstrap
    try:
        await begin()
    except (KafkaError, OSError, TimeoutError) as exc:
        await _stop(client)
        reason = await diagnose(kafka)
        raise KafkaUnreachableError(
            f"cannot connect to Kafka at {kafka.describe()}: {reason or exc}"
        ) from exc


async def stop(client: Any) -> None:
    """Stop or close a client; errors while closing are not the caller's problem."""
    await _stop(client)


@contextlib.asynccontextmanager
async def running(client: Any, kafka: KafkaSettings) -> AsyncIterator[Any]:
    """``async with running(producer(kafka), kafka) as p:`` started, and always stopped."""
    await start(client, kafka)
    try:
        yield client
    finally:
        await _stop(client)


def _explain(  # noqa: PLR0911  # one answer per kind of failure
    exc: BaseException, kafka: KafkaSettings, host: str, port: int
) -> str:
    where_ = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        trust = f"the CA in {kafka.ssl_cafile}" if kafka.ssl_cafile else "the system CAs"
        return (
            f"TLS: {where_} presented a certificate that {trust} does not vouch for "
            f"({exc.verify_message}); check {where('ssl_cafile')}"
        )
    if isinstance(exc, ssl.SSLError):
        if kafka.security_protocol.uses_tls and "EOF" in str(exc).upper():
            return (
                f"TLS: {where_} closed the connection during the handshake (a plaintext "
                f"listener, or it requires a client certificate: {where('ssl_certfile')}): "
                f"{exc}"
            )
        return f"TLS handshake with {where_} failed: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens on {where_} (connection refused)"
    if isinstance(exc, ConnectionResetError) and kafka.security_protocol.uses_tls:
        return (
            f"{where_} reset the connection during the TLS handshake (a plaintext listener?): "
            f"check {where('security_protocol')}"
        )
    if isinstance(exc, TimeoutError):
        return f"{where_} did not answer within {DIAGNOSE_TIMEOUT_S:g} s"
    name = type(exc).__name__
    if "Sasl" in name or "Authentication" in name:
        return (
            f"SASL {kafka.sasl_mechanism} as {kafka.sasl_username!r} refused by {where_}: "
            f"{exc}; check {where('sasl_username')} and {where('sasl_password')}"
        )
    if isinstance(exc, KafkaError) and not kafka.security_protocol.uses_tls:
        return (
            f"{where_} dropped the connection ({name}: {exc}); a TLS listener does this to a "
            f"{kafka.security_protocol} client: check {where('security_protocol')}"
        )
    if isinstance(exc, KafkaError) and not kafka.security_protocol.uses_sasl:
        return (
            f"{where_} closed the connection after the TLS handshake ({name}: {exc}): the "
            f"listener wants a client certificate ({where('ssl_certfile')}) or SASL "
            f"({where('security_protocol')} SASL_SSL)"
        )
    return f"{where_}: {name}: {exc}"


async def diagnose(kafka: KafkaSettings) -> str | None:
    """Why a client cannot connect: one connection attempt (TCP, TLS, API versions, SASL) to
    each bootstrap server, the first failure explained; None when every one answers."""
    options = kafka.auth_options()
    auth = {k: v for k, v in options.items() if k not in ("bootstrap_servers",)}
    for server in kafka.bootstrap_server_list:
        host, _, port_text = server.rpartition(":")
        host = host.strip("[]")
        port = int(port_text)
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, request_timeout_ms=int(DIAGNOSE_TIMEOUT_S * 1000), **auth),
                DIAGNOSE_TIMEOUT_S,
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            return _explain(exc, kafka, host, port)
        try:  # what a client's bootstrap asks next: refused without SASL on a SASL listener
            await asyncio.wait_for(conn.send(MetadataRequest([])), DIAGNOSE_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError) as exc:
            return _explain(exc, kafka, host, port)
        finally:
            conn.close()
    return None
