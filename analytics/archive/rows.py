"""From a Kafka record to an archive row (pure: no Kafka, no file I/O).

The record read from Kafka is ``contract.kafka.records.RawRecord`` (re-exported here), made
by the one converter ``contract.kafka.records.raw_record``.

Every row keeps the original key, value and headers byte for byte (replay republishes them
unchanged), the Kafka coordinates and timestamp, and what the codec made of the value: the
event name, the decoded record as JSON, and its ``event_time`` / ``ingest_time`` lifted
into columns of their own (the record's other scalar fields become typed columns in the
writer: :mod:`analytics.archive.schema`). A value the codec rejects is archived all the
same, with the error class and reason instead of a payload: nothing read is ever dropped.

JSON conventions for the payload: timestamps (``datetime``) as integer microseconds since
the epoch (UTC), dates as days since the epoch, UUIDs as strings, bytes as lower-case hex.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

from contract.kafka.records import Headers, RawRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)

__all__ = [
    "ArchiveRow",
    "DecodedEvent",
    "Decoder",
    "Headers",
    "PayloadEncodingError",
    "RawRecord",
    "decode_row",
    "headers_from_json",
    "headers_json",
    "payload_json",
    "timestamp_micros",
]


@dataclass(frozen=True)
class DecodedEvent:
    """What the archive needs from the codec: the event's name and its record."""

    name: str
    record: Mapping[str, object]


Decoder = Callable[[bytes], DecodedEvent]


@dataclass(frozen=True)
class ArchiveRow:
    """One archived record: the raw record plus what decoding found."""

    raw: RawRecord
    event_name: str | None
    payload_json: str | None
    event_time_us: int | None
    ingest_time_us: int | None
    error_type: str | None
    error_reason: str | None
    # the decoded record itself, for the typed columns (analytics.archive.schema); None
    # on undecodable rows (and when unknown: such a row is read back from payload)
    record: Mapping[str, object] | None = field(default=None, compare=False, repr=False)


class PayloadEncodingError(TypeError):
    """A decoded record holds a value the archive cannot represent as JSON."""


def _json_default(value: object) -> object:
    """JSON for the non-JSON values fastavro decodes to (see module doc)."""
    if isinstance(value, datetime):
        return timestamp_micros(value)
    if isinstance(value, date):
        return (value - _EPOCH_DATE).days
    if isinstance(value, time):
        return (
            (value.hour * 60 + value.minute) * 60 + value.second
        ) * 1_000_000 + value.microsecond
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return dict(value)
    raise PayloadEncodingError(f"cannot archive a value of type {type(value).__name__}")


def payload_json(record: Mapping[str, object]) -> str:
    """The decoded record as compact JSON (field order kept; see module doc)."""
    try:
        return json.dumps(record, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:  # e.g. non-string dict keys, circular references
        raise PayloadEncodingError(f"cannot archive the record: {exc}") from exc


def timestamp_micros(value: object) -> int | None:
    """Microseconds since the epoch from a ``datetime`` (naive = UTC) or an integer."""
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = aware - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise PayloadEncodingError(f"not a timestamp: {value!r}")


def decode_row(raw: RawRecord, decoder: Decoder, errors: tuple[type[Exception], ...]) -> ArchiveRow:
    """Decode ``raw.value``; an error of one of the ``errors`` types is archived, not raised."""
    if raw.value is None:
        return ArchiveRow(raw, None, None, None, None, "Tombstone", "record has no value")
    caught: tuple[type[Exception], ...] = (*errors, PayloadEncodingError)
    try:
        event = decoder(raw.value)
        return ArchiveRow(
            raw=raw,
            event_name=event.name,
            payload_json=payload_json(event.record),
            event_time_us=timestamp_micros(event.record.get("event_time")),
            ingest_time_us=timestamp_micros(event.record.get("ingest_time")),
            error_type=None,
            error_reason=None,
            record=event.record,
        )
    except caught as exc:
        return ArchiveRow(raw, None, None, None, None, type(exc).__name__, str(exc))


def headers_json(headers: Headers) -> str | None:
    """Headers as JSON ``[[name, base64 | null], ...]`` (order kept; null for a header whose
    value is null, as Kafka tells it from an empty one), or None when there are none."""
    if not headers:
        return None
    return json.dumps(
        [
            [name, None if value is None else base64.b64encode(value).decode("ascii")]
            for name, value in headers
        ]
    )


def headers_from_json(text: str | None) -> Headers:
    """Inverse of :func:`headers_json`."""
    if not text:
        return ()
    items = json.loads(text)
    return tuple(
        (str(name), None if value is None else base64.b64decode(value)) for name, value in items
    )
