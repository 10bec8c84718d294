"""Event codec: Avro single-object encoding (default) or Confluent framing, over fastavro.

Wire formats (decoding detects which by the first byte):

- single object: ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint of the writer
  schema's Parsing Canonical Form + the Avro binary body;
- Confluent: ``00`` + 4-byte big-endian schema id + body; ids come from a
  :class:`SchemaIdResolver` (``InMemorySchemaIds`` here; a registry client elsewhere).

Records are plain dicts with fastavro's Python values: ``timestamp-micros`` decodes to an
aware ``datetime`` in UTC (encode takes an aware datetime or an int of microseconds), ``uuid``
decodes to ``uuid.UUID`` (encode takes a ``uuid.UUID`` or its canonical string), enums are
their symbol strings, ``bytes`` are ``bytes``; a missing field with a default takes the default.

``encode`` is the hot path: fastavro's writer, which coerces what it can (an int or numeric
text into a double, 1 into a boolean, a naive datetime as UTC); what it cannot write raises
:class:`InvalidEventError` carrying the strict validator's message. ``validate``,
``new_event`` and ``Codec(..., strict=True)`` are strict (see ``contract.validation``).
``decode`` never raises anything but :class:`EventDecodeError` subclasses, whatever the bytes.

``Codec(..., logical_types=False)`` (``raw_codec()``, ``decode_raw``) is the raw mode for hot
paths: the same bytes on the wire, but ``timestamp-micros`` values are ``int`` microseconds
and ``uuid`` values canonical ``str`` both ways (no ``datetime``/``UUID`` objects; see
``contract.rawform``). It accepts exactly the bytes the default mode accepts, and its record is
the default one with each UUID as ``str(uuid)`` and each datetime as epoch microseconds.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, NamedTuple, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from contract.errors import (
    BadMagicError,
    CorruptEventError,
    EventDecodeError,
    InvalidEventError,
    TrailingBytesError,
    TruncatedEventError,
    UnknownEventError,
    UnknownFingerprintError,
    UnknownSchemaIdError,
    WrongEventTypeError,
)
from contract.rawform import canonical_uuid, compile_raw_guard, strip_logical_types
from contract.registry import EventSchema, Resolution, SchemaRegistry
from contract.validation import Check, compile_int_guard, compile_validator

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_SIZE = 10
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_SIZE = 5
_MAX_SCHEMA_ID = 2**31 - 1


class Decoded(NamedTuple):
    """A decoded event: its name, the record (current schema's shape), the writer's version."""

    name: str
    record: dict[str, Any]
    writer_version: int


_new_tuple = tuple.__new__


class SchemaIdResolver(Protocol):
    """Maps Confluent schema ids to schema fingerprints and back."""

    def id_for(self, fingerprint: bytes) -> int | None:
        """The schema id registered for a fingerprint, or None."""
        ...

    def fingerprint_for(self, schema_id: int) -> bytes | None:
        """The fingerprint of the schema registered under an id, or None."""
        ...


class InMemorySchemaIds:
    """A fixed id <-> fingerprint table (no registry server); ids are 1..2**31-1."""

    def __init__(self, ids: Mapping[int, bytes] | None = None) -> None:
        self._fingerprints: dict[int, bytes] = {}
        self._ids: dict[bytes, int] = {}
        for schema_id, fp in (ids or {}).items():
            self.register(schema_id, fp)

    @classmethod
    def for_registry(cls, registry: SchemaRegistry, first_id: int = 1) -> InMemorySchemaIds:
        """Ids for every known schema version, in (fingerprint-sorted) deterministic order."""
        fps = sorted({fp for fp, _ in registry.fingerprints()})
        return cls({first_id + i: fp for i, fp in enumerate(fps)})

    def register(self, schema_id: int, fingerprint: bytes) -> None:
        if not 0 < schema_id <= _MAX_SCHEMA_ID:
            raise ValueError(f"schema id must be in 1..{_MAX_SCHEMA_ID}, got {schema_id}")
        if len(fingerprint) != 8:
            raise ValueError(f"a fingerprint is 8 bytes, got {len(fingerprint)}")
        known = self._fingerprints.get(schema_id)
        if known is not None and known != fingerprint:
            raise ValueError(f"schema id {schema_id} is already {known.hex()}")
        self._fingerprints[schema_id] = fingerprint
        self._ids.setdefault(fingerprint, schema_id)

    def id_for(self, fingerprint: bytes) -> int | None:
        return self._ids.get(fingerprint)

    def fingerprint_for(self, schema_id: int) -> bytes | None:
        return self._fingerprints.get(schema_id)


def _uuid_field_names(schema: EventSchema) -> tuple[str, ...]:
    """Top-level uuid fields: fastavro writes any string there but cannot read a non-UUID."""
    return tuple(
        f["name"]
        for f in schema.raw["fields"]
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "uuid"
    )


class _Reader(NamedTuple):
    """Everything decode needs for one writer fingerprint, looked up once."""

    resolution: Resolution
    writer: Any  # the parsed writer schema (logical types stripped in raw mode)
    reader: Any  # the parsed current schema when it differs from the writer, else None
    int_guard: Check | None  # range checks of decoded ints (current schema), if it has any
    raw_guard: Callable[[Any], Any] | None  # raw mode: the post-read checks, if any


class _Encoder(NamedTuple):
    schema: EventSchema
    parsed: Any  # what fastavro writes with (logical types stripped in raw mode)
    header: bytes
    uuid_fields: tuple[str, ...]


_OBJECT_REPR = re.compile(r" from <[^>]*>")


def _no_repr(exc: BaseException) -> str:
    """A library message without object reprs (memory addresses): the same bytes always give
    the same message (dead letters compare equal, logs group)."""
    return _OBJECT_REPR.sub("", str(exc))


class Codec:
    """Encode/decode events against a :class:`SchemaRegistry` (all schemas parsed once)."""

    def __init__(
        self,
        registry: SchemaRegistry,
        ids: SchemaIdResolver | None = None,
        *,
        strict: bool = False,
        logical_types: bool = True,
    ) -> None:
        """``strict=True`` validates every record before encoding (slower; for low-rate
        producers such as command issuers); otherwise ``encode`` is fastavro-lax.
        ``logical_types=False`` is the raw mode (int microseconds, str uuids; module doc)."""
        self.registry = registry
        self.ids = ids
        self.strict = strict
        self.logical_types = logical_types
        stripped: dict[int, Any] = {}

        def parsed(schema: EventSchema) -> Any:
            if logical_types:
                return schema.parsed
            if id(schema) not in stripped:
                stripped[id(schema)] = parse_schema(strip_logical_types(dict(schema.raw)))
            return stripped[id(schema)]

        self._encoders: dict[str, _Encoder] = {}
        self._validators: dict[str, Check] = {}
        for name in registry.names():
            schema = registry.current(name)
            header = SINGLE_OBJECT_MAGIC + schema.fingerprint
            uuids = _uuid_field_names(schema)
            self._encoders[name] = _Encoder(schema, parsed(schema), header, uuids)
            self._validators[name] = compile_validator(schema.raw)
        int_guards = {n: compile_int_guard(registry.current(n).raw) for n in registry.names()}
        raw_guards = {
            n: None if logical_types else compile_raw_guard(registry.current(n).raw)
            for n in registry.names()
        }
        self._readers: dict[bytes, _Reader] = {
            fp: _Reader(
                res,
                parsed(res.writer),
                None if res.reader is None else parsed(res.current),
                int_guards[res.current.name] if logical_types else None,
                raw_guards[res.current.name],
            )
            for fp, res in registry.fingerprints()
        }

    # ------------------------------------------------------------------ encode

    def encode(self, event_name: str, record: Mapping[str, Any]) -> bytes:
        """Single-object encoding of ``record`` with the current schema of ``event_name``."""
        encoder = self._encoders.get(event_name)
        if encoder is None:
            raise self._unknown(event_name)
        buffer = BytesIO()
        buffer.write(encoder.header)
        self._write_body(encoder, buffer, record)
        return buffer.getvalue()

    def encode_confluent(self, event_name: str, record: Mapping[str, Any]) -> bytes:
        """Confluent framing (``00`` + big-endian schema id) of the current schema."""
        encoder = self._encoders.get(event_name)
        if encoder is None:
            raise self._unknown(event_name)
        schema_id = None if self.ids is None else self.ids.id_for(encoder.schema.fingerprint)
        if schema_id is None:
            raise UnknownSchemaIdError(
                f"no schema id for {event_name} v{encoder.schema.version} "
                f"({encoder.schema.fingerprint_hex}): configure a SchemaIdResolver"
            )
        buffer = BytesIO()
        buffer.write(CONFLUENT_MAGIC + schema_id.to_bytes(4, "big"))
        self._write_body(encoder, buffer, record)
        return buffer.getvalue()

    def _write_body(self, encoder: _Encoder, buffer: BytesIO, record: Mapping[str, Any]) -> None:
        if self.strict:
            self._validators[encoder.schema.name](record, encoder.schema.name)
        try:
            if self.logical_types:
                for name in encoder.uuid_fields:
                    value = record.get(name)
                    if value is not None and not isinstance(value, uuid.UUID):
                        uuid.UUID(value)
            else:  # the same acceptance, the str as given goes on the wire (as by default)
                for name in encoder.uuid_fields:
                    value = record.get(name)
                    if value is not None:
                        canonical_uuid(value)
            schemaless_writer(buffer, encoder.parsed, record)
        except Exception as exc:  # TypeError, ValueError, AttributeError, UnicodeError...
            raise self._invalid(encoder.schema.name, record, exc) from exc

    def _invalid(self, event_name: str, record: Any, exc: Exception) -> InvalidEventError:
        try:
            self._validators[event_name](record, event_name)
        except InvalidEventError as strict:
            return strict
        return InvalidEventError(f"{event_name}: cannot encode ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------ validate

    def validate(self, event_name: str, record: Any) -> None:
        """Strict check of ``record`` against the current schema; raises InvalidEventError."""
        check = self._validators.get(event_name)
        if check is None:
            raise self._unknown(event_name)
        check(record, event_name)

    def new_event(
        self, event_name: str, *, now: Callable[[], dt.datetime] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A validated record with ``event_id`` (uuid4) and ``event_time`` (now, UTC) filled in.

        Fields given explicitly win; ``now`` replaces the clock (tests, replay).
        """
        clock = now or functools.partial(dt.datetime.now, dt.UTC)
        record: dict[str, Any] = {"event_id": uuid.uuid4(), "event_time": clock(), **fields}
        self.validate(event_name, record)
        return record

    # ------------------------------------------------------------------ decode

    def decode(self, data: bytes | bytearray | memoryview) -> Decoded:
        """Decode either framing; the record is resolved to the current schema."""
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise EventDecodeError(f"expected bytes, got {type(data).__name__}")
            data = bytes(data)
        # hot path inline: single-object framing with a known fingerprint
        reader = self._readers.get(data[2:SINGLE_OBJECT_HEADER_SIZE])
        if reader is not None and data[:2] == SINGLE_OBJECT_MAGIC:
            start = SINGLE_OBJECT_HEADER_SIZE
        else:
            reader, start = self._reader_for(data)
        buffer = BytesIO(data)
        buffer.seek(start)
        writer = reader.resolution.writer
        try:
            record = schemaless_reader(buffer, reader.writer, reader.reader)
        except EOFError as exc:
            raise TruncatedEventError(
                f"{writer.name} v{writer.version}: body ends early ({_no_repr(exc)})"
            ) from None
        except Exception as exc:  # UnicodeDecodeError, IndexError, ValueError, OverflowError...
            raise CorruptEventError(
                f"{writer.name} v{writer.version}: body does not parse "
                f"({type(exc).__name__}: {exc})"
            ) from None
        end = buffer.tell()
        if end != len(data):
            raise TrailingBytesError(
                f"{writer.name} v{writer.version}: {len(data) - end} byte(s) after the body"
            )
        if reader.int_guard is not None:
            try:
                reader.int_guard(record, writer.name)
            except InvalidEventError as exc:
                raise CorruptEventError(f"{writer.name} v{writer.version}: {exc}") from None
        if reader.raw_guard is not None:
            try:
                reader.raw_guard(record)
            except InvalidEventError as exc:
                raise CorruptEventError(f"{writer.name} v{writer.version}: {exc}") from None
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (hot path)
        return _new_tuple(Decoded, (writer.name, record, writer.version))

    def decode_as(self, event_name: str, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """Decode and require the event to be ``event_name``; returns the record."""
        if event_name not in self._encoders:
            raise self._unknown(event_name)
        decoded = self.decode(data)
        if decoded.name != event_name:
            raise WrongEventTypeError(f"expected {event_name}, got {decoded.name}")
        return decoded.record

    def _reader_for(self, data: bytes) -> tuple[_Reader, int]:
        """The reader named by the framing, and where the body starts."""
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < SINGLE_OBJECT_HEADER_SIZE:
                raise TruncatedEventError(
                    f"single-object header needs {SINGLE_OBJECT_HEADER_SIZE} bytes, got {len(data)}"
                )
            reader = self._readers.get(data[2:SINGLE_OBJECT_HEADER_SIZE])
            if reader is None:
                raise UnknownFingerprintError(
                    f"unknown schema fingerprint {data[2:SINGLE_OBJECT_HEADER_SIZE].hex()}"
                )
            return reader, SINGLE_OBJECT_HEADER_SIZE
        if data[:1] == CONFLUENT_MAGIC:
            return self._confluent_reader(data), CONFLUENT_HEADER_SIZE
        if data in (b"", SINGLE_OBJECT_MAGIC[:1]):
            raise TruncatedEventError(f"{len(data)} byte(s) cannot hold an event header")
        raise BadMagicError(
            f"first bytes {data[:2].hex()} are neither single-object (c301) "
            "nor Confluent (00) framing"
        )

    def _confluent_reader(self, data: bytes) -> _Reader:
        if len(data) < CONFLUENT_HEADER_SIZE:
            raise TruncatedEventError(
                f"Confluent header needs {CONFLUENT_HEADER_SIZE} bytes, got {len(data)}"
            )
        schema_id = int.from_bytes(data[1:CONFLUENT_HEADER_SIZE], "big")
        if self.ids is None:
            raise UnknownSchemaIdError(f"schema id {schema_id}: no SchemaIdResolver configured")
        fp = self.ids.fingerprint_for(schema_id)
        reader = None if fp is None else self._readers.get(fp)
        if reader is None:
            raise UnknownSchemaIdError(f"unknown schema id {schema_id}")
        return reader

    def _unknown(self, event_name: str) -> UnknownEventError:
        return UnknownEventError(
            f"unknown event {event_name!r}; known: {', '.join(self.registry.names())}"
        )


@functools.cache
def default_codec() -> Codec:
    """The codec over the repository's schemas (loaded and parsed once per process)."""
    return Codec(SchemaRegistry.load())


@functools.cache
def raw_codec() -> Codec:
    """The raw-mode codec (``logical_types=False``) over the repository's schemas."""
    return Codec(default_codec().registry, logical_types=False)


def decode_raw(data: bytes | bytearray | memoryview) -> Decoded:
    """``decode`` in raw mode: int microseconds for timestamps, canonical str for uuids."""
    return raw_codec().decode(data)


def encode(event_name: str, record: Mapping[str, Any]) -> bytes:
    return default_codec().encode(event_name, record)


def decode(data: bytes | bytearray | memoryview) -> Decoded:
    return default_codec().decode(data)


def decode_as(event_name: str, data: bytes | bytearray | memoryview) -> dict[str, Any]:
    return default_codec().decode_as(event_name, data)


def validate(event_name: str, record: Any) -> None:
    default_codec().validate(event_name, record)


def new_event(event_name: str, **fields: Any) -> dict[str, Any]:
    return default_codec().new_event(event_name, **fields)
