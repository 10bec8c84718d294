"""What the gateway does with each message, decided without MQTT or Kafka. Pure.

Uplink (a home's MQTT message -> Kafka): the topic must be a layout uplink topic, the bytes
must decode (the project codec: Avro single-object encoding), the event must be the one the
channel carries, and its ``site_id`` must equal the site in the topic. Then the unchanged
bytes go to the channel's Kafka topic keyed by the site. Anything else becomes a DeadLetter
record (``contract/ops/DeadLetter.avsc``) with the reason; ``source_topic`` is
``mqtt:<topic>`` (partition and offset -1: MQTT has neither), the original bytes kept.

The broker's ACL already stops a home from publishing under another site's topic; the
site check here is the second wall (a misconfigured ACL, a home whose software puts a
wrong id into the event) and what makes a mismatch visible instead of silently re-keyed.

Downlink (a ``site.commands`` record -> MQTT): the body must decode as a SiteCommand; its
site picks the topic. A Kafka key naming another site is dead-lettered (it would reach the
wrong home's partition order). The MQTT message expiry is the command's remaining validity
(at least 1 s), so the broker itself drops commands that expired while a home was offline.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contract.codec import Codec
from contract.errors import EventError
from contract.mqtt.layout import (
    EVENT_OF,
    UPLINK,
    Channel,
    LayoutError,
    kafka_topic,
    parse_topic,
    site_topic,
)
from contract.topics import topic

MAX_REASON_CHARS = 2000
MIN_EXPIRY_S = 1
_NS = uuid.UUID("5b0c7f5e-3c55-4a59-9a3e-6f1f0d7e4a10")  # namespace of gateway dead letters


class GatewayRejectError(ValueError):
    """Why a message cannot pass the gateway (its class name becomes ``error_type``)."""


class SiteMismatchError(GatewayRejectError):
    pass


class WrongChannelError(GatewayRejectError):
    pass


class BadTopicError(GatewayRejectError):
    pass


@dataclass(frozen=True)
class ToKafka:
    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class ToMqtt:
    topic: str
    payload: bytes
    expiry_s: int | None  # None: the command has no valid_until
    site_id: str
    command_id: str


@dataclass(frozen=True)
class Rejected:
    """A message for ``deadletter``: the DeadLetter record and its key (the original key)."""

    topic: str
    key: bytes | None
    record: dict[str, Any]


def _micros(value: object) -> int | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1_000_000)
    if isinstance(value, int):
        return value
    return None


def dead_letter(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    error: BaseException,
    consumer: str,
    now_us: int,
    prefix: str = "",
) -> Rejected:
    """A DeadLetter for ``deadletter``. Its event id is derived from where the message came
    from and its bytes, so a redelivered bad message makes the same dead letter."""
    digest = hashlib.sha256(
        source_topic.encode() + b"\0" + f"{partition}:{offset}".encode() + b"\0" + value
    ).hexdigest()
    reason = str(error) or type(error).__name__
    record = {
        "event_id": str(uuid.uuid5(_NS, digest)),
        "event_time": now_us,
        "ingest_time": None,
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "key": key,
        "original": value,
        "error_type": type(error).__name__,
        "reason": reason[:MAX_REASON_CHARS],
        "consumer": consumer,
    }
    return Rejected(topic("deadletter").full_name(prefix), key, record)


def route_uplink(
    mqtt_topic: str,
    payload: bytes,
    codec: Codec,
    *,
    consumer: str,
    now_us: int,
    prefix: str = "",
) -> ToKafka | Rejected:
    """A home's message: its Kafka record, or its dead letter (see module doc)."""
    site_key: bytes | None = None
    try:
        try:
            where = parse_topic(mqtt_topic)
        except LayoutError as exc:
            raise BadTopicError(str(exc)) from None
        site_key = where.site_id.encode()
        if where.channel not in UPLINK:
            raise WrongChannelError(f"{mqtt_topic}: {where.channel} is not an uplink channel")
        decoded = codec.decode(payload)
        if decoded.name != where.event:
            raise WrongChannelError(f"{mqtt_topic} carries {where.event}, got a {decoded.name}")
        body_site = decoded.record.get("site_id")
        if body_site != where.site_id:
            raise SiteMismatchError(
                f"topic names site {where.site_id!r}, the {decoded.name} names {body_site!r}"
            )
    except (EventError, GatewayRejectError) as exc:
        return dead_letter(
            source_topic=f"mqtt:{mqtt_topic}",
            partition=-1,
            offset=-1,
            key=site_key,
            value=payload,
            error=exc,
            consumer=consumer,
            now_us=now_us,
            prefix=prefix,
        )
    return ToKafka(kafka_topic(where.channel, prefix), site_key, payload)


def route_command(
    record: Mapping[str, Any] | None,
    key: bytes | None,
    value: bytes,
    *,
    now_us: int,
) -> ToMqtt:
    """A decoded SiteCommand record (``codec.decode_as``) -> its MQTT message; raises
    GatewayRejectError (or the codec's EventError, upstream) for the dead letter."""
    if record is None:
        raise GatewayRejectError("empty command")
    site_id = str(record.get("site_id", ""))
    if key is not None and key != site_id.encode():
        raise SiteMismatchError(
            f"Kafka key {key.decode('utf-8', 'replace')!r} but the command names {site_id!r}"
        )
    try:
        mqtt = site_topic(site_id, Channel.COMMANDS)
    except LayoutError as exc:
        raise BadTopicError(str(exc)) from None
    until = _micros(record.get("valid_until"))
    expiry = None if until is None else max(MIN_EXPIRY_S, math.ceil((until - now_us) / 1e6))
    return ToMqtt(mqtt, value, expiry, site_id, str(record.get("command_id", "")))


UPLINK_EVENTS = {c: EVENT_OF[c] for c in UPLINK}
