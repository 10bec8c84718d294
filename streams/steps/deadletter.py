"""Dead letter: build a DeadLetter record (contract/ops/DeadLetter.avsc) for an event an agent
could not decode or found invalid. Pure: the agent produces the dict to ``deadletter``.
The record itself is built by :func:`contract.deadletter.build_dead_letter` (shared with
the edge bridge).

``error_type`` is the exception's class name (e.g. ``InvalidRecordError``, or the codec's
``TruncatedEvent``/``UnknownFingerprint``); ``reason`` is its message (never empty, capped at
``MAX_REASON_CHARS``). The original key and value bytes are kept unchanged. The event id is
derived from (topic, partition, offset): a re-processed bad event gives the same dead letter.
"""

from __future__ import annotations

from typing import Any, Protocol

from contract.deadletter import MAX_REASON_CHARS, build_dead_letter

__all__ = ["MAX_REASON_CHARS", "ConsumedRecord", "build_dead_letter", "dead_letter_of"]

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
