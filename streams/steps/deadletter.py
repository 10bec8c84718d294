"""Dead letter: build a DeadLetter record (contract/ops/DeadLetter.avsc) for an event an agent
could not decode or found invalid. Pure: the agent produces the dict to ``deadletter``.

``error_type`` is the exception's class name (e.g. ``InvalidRecordError``, or the codec's
``TruncatedEvent``/``UnknownFingerprint``); ``reason`` is its message (never empty, capped at
``MAX_REASON_CHARS``). The original key and value bytes are kept unchanged. The event id is
derived from (topic, partition, offset): a re-processed bad event gives the same dead letter.
"""

from __future__ import annotations

from typing import Any, Protocol

from contract.errors import InvalidRecordError
from streams.steps.ids import derived_id

MAX_REASON_CHARS = 2000
MICROS_PER_MS = 1000


class ConsumedRecord(Protocol):
    """What is read of a record consumed outside Faust (aiokafka's ``ConsumerRecord`` fits):
    ``timestamp`` in milliseconds since the epoch (Kafka's; -1 or None when unknown)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int | None: ...


def kafka_event_time(timestamp_ms: int | None) -> int | None:
    """A Kafka record timestamp (ms; -1 or None when unknown) as int microseconds, or None."""
    return timestamp_ms * MICROS_PER_MS if timestamp_ms is not None and timestamp_ms >= 0 else None


def dead_letter_of(
    record: ConsumedRecord, error: BaseException, consumer: str, now: int
) -> dict[str, Any]:
    """The DeadLetter record of a consumed record ``consumer`` rejected with ``error`` at
    ``now`` (us)."""
    return build_dead_letter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        error=error,
        consumer=consumer,
        now=now,
        event_time=kafka_event_time(record.timestamp),
    )


def build_dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: BaseException,
    consumer: str,
    now: int,
    event_time: int | None = None,
) -> dict[str, Any]:
    """The DeadLetter record dict. ``now`` (microseconds) is when it was rejected; the event
    time is the original message timestamp when known (``ingest_time`` is then ``now``)."""
    n = "DeadLetter"
    if not topic:
        raise InvalidRecordError(n, "source_topic", "empty topic name")
    if partition < 0:
        raise InvalidRecordError(n, "partition", f"must be >= 0, got {partition}")
    if offset < 0:
        raise InvalidRecordError(n, "offset", f"must be >= 0, got {offset}")
    if not consumer:
        raise InvalidRecordError(n, "consumer", "empty consumer name")
    if key is not None and not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidRecordError(n, "key", f"expected bytes or None, got {type(key).__name__}")
    if value is not None and not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidRecordError(n, "original", f"expected bytes, got {type(value).__name__}")
    reason = str(error) or repr(error)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return {
        "event_id": derived_id("dead-letter", topic, partition, offset),
        "event_time": now if event_time is None else event_time,
        "ingest_time": None if event_time is None else now,
        "source_topic": topic,
        "partition": partition,
        "offset": offset,
        "key": None if key is None else bytes(key),
        "original": b"" if value is None else bytes(value),
        "error_type": type(error).__name__,
        "reason": reason,
        "consumer": consumer,
    }
