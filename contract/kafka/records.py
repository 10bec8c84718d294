"""A Kafka record as read: the one record type of archive, replay and the topic probes,
and the one converter from aiokafka's ``ConsumerRecord``.

Key, value and headers are kept byte for byte, a header whose value is null included: Kafka
tells a null header value (length -1) from an empty one, and a replay republishes what was
read, so the converter keeps ``None`` (never ``b""``, never an error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class RawRecord:
    """A record as read from Kafka (or as stored in the archive)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_type: int = 0  # 0 = CreateTime, 1 = LogAppendTime


def headers_of(raw: Any) -> Headers:
    """Headers as ``((name, bytes | None), ...)`` from aiokafka's list of pairs."""
    return tuple((str(name), None if value is None else bytes(value)) for name, value in raw or ())


def raw_record(message: Any) -> RawRecord:
    """An aiokafka ``ConsumerRecord`` as a :class:`RawRecord` (see module doc)."""
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=message.timestamp,
        key=None if message.key is None else bytes(message.key),
        value=None if message.value is None else bytes(message.value),
        headers=headers_of(message.headers),
        timestamp_type=message.timestamp_type,
    )
