"""The codec's framing, errors and helpers, table-driven against the real schemas."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from contract import (
    BadMagicError,
    Codec,
    CorruptEventError,
    EventDecodeError,
    InMemorySchemaIds,
    InvalidEventError,
    SchemaRegistry,
    TrailingBytesError,
    TruncatedEventError,
    UnknownEventError,
    UnknownFingerprintError,
    UnknownSchemaIdError,
    WrongEventTypeError,
)
from contract.registry import fingerprint

REGISTRY = SchemaRegistry.load()
CODEC = Codec(REGISTRY, InMemorySchemaIds.for_registry(REGISTRY))
NO_IDS = Codec(REGISTRY)
T0 = dt.datetime(2026, 11, 24, 1, 0, tzinfo=dt.UTC)


def telemetry(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "event_time": T0,
        "site_id": "site-0001",
        "oem": "huawei",
        "model": "SUN2000-10KTL-M1",
        "battery_power_kw": 3.5,
        "soc_pct": 55.0,
        "grid_power_kw": 2.0,
        "pv_power_kw": 0.0,
        "load_kw": 1.5,
        "headroom_up_kw": 1.5,
        "headroom_down_kw": 8.5,
        "max_discharge_kw": 5.0,
        "max_charge_kw": 5.0,
        "mode": "REMOTE",
    }
    record.update(changes)
    return record


# ------------------------------------------------------------------ fingerprints


def rabin_reference(data: bytes) -> int:
    """CRC-64-AVRO exactly as the Avro specification writes it ("Schema Fingerprints")."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_reference_rabin_matches_the_spec_constants() -> None:
    assert rabin_reference(b"") == 0xC15D213AA4D7A795  # the spec's EMPTY
    # Apache Avro's shared test vector: fingerprint64("null") = 7195948357588979594
    assert rabin_reference(b'"null"') == 7195948357588979594


def test_null_schema_fingerprint_is_little_endian_on_the_wire() -> None:
    assert fingerprint("null") == (7195948357588979594).to_bytes(8, "little")


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_fingerprint_is_rabin_of_the_canonical_form(name: str) -> None:
    schema = REGISTRY.current(name)
    expected = rabin_reference(schema.canonical_form.encode()).to_bytes(8, "little")
    assert schema.fingerprint == expected
    assert '"doc"' not in schema.canonical_form
    assert "logicalType" not in schema.canonical_form


# ------------------------------------------------------------------ decode errors


def _valid() -> bytes:
    return CODEC.encode("SiteTelemetry", telemetry())


UNKNOWN_FP = b"\xc3\x01" + b"\x00" * 8 + b"\x00"
DECODE_ERRORS: list[tuple[str, Any, type[EventDecodeError], str]] = [
    ("empty", b"", TruncatedEventError, "0 byte"),
    ("first magic byte only", b"\xc3", TruncatedEventError, "1 byte"),
    ("header cut", b"\xc3\x01\x75\xaa", TruncatedEventError, "needs 10 bytes"),
    ("bad second magic byte", b"\xc3\x02" + b"\x00" * 9, BadMagicError, "c302"),
    ("json, not avro", b'{"a": 1}', BadMagicError, "neither"),
    ("unknown fingerprint", UNKNOWN_FP, UnknownFingerprintError, "0000000000000000"),
    ("confluent header cut", b"\x00\x00\x01", TruncatedEventError, "needs 5 bytes"),
    ("confluent unknown id", b"\x00\x7f\xff\xff\xff\x00", UnknownSchemaIdError, "2147483647"),
    ("not bytes", "c301", EventDecodeError, "expected bytes"),
    ("None (a tombstone)", None, EventDecodeError, "NoneType"),
]


@pytest.mark.parametrize(
    ("data", "error", "says"),
    [pytest.param(d, e, s, id=i) for i, d, e, s in DECODE_ERRORS],
)
def test_decode_errors(data: Any, error: type[EventDecodeError], says: str) -> None:
    with pytest.raises(error, match=says):
        CODEC.decode(data)


def test_body_errors_name_the_event() -> None:
    valid = _valid()
    with pytest.raises(TruncatedEventError, match="SiteTelemetry v2: body ends early"):
        CODEC.decode(valid[:-3])
    with pytest.raises(TrailingBytesError, match="1 byte"):
        CODEC.decode(valid + b"\x00")
    # the byte 3 before v1's end: 49 bytes of v2 fields follow it (a null union index, six doubles)
    bad_enum = valid[:-52] + b"\x7e" + valid[-51:]
    with pytest.raises(CorruptEventError, match="SiteTelemetry"):
        CODEC.decode(bad_enum)


def test_bytes_like_inputs_decode() -> None:
    valid = _valid()
    assert CODEC.decode(bytearray(valid)) == CODEC.decode(memoryview(valid))


def test_decoded_values_have_documented_python_types() -> None:
    decoded = CODEC.decode(_valid())
    assert decoded == (decoded.name, decoded.record, 2)  # written with the current v2
    record = decoded.record
    assert record["event_id"] == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert record["event_time"] == T0
    assert record["event_time"].tzinfo is not None
    assert record["ingest_time"] is None  # default filled in
    assert record["reserve_armed"] == "NONE"
    assert record["faulted"] is False


def test_decoded_int_outside_32_bits_is_corrupt() -> None:
    record = CODEC.new_event(
        "CommandResult", site_id="s", command_id="c", status="APPLIED", register_writes=1
    )
    valid = CODEC.encode("CommandResult", record)
    # register_writes=1 is zig-zag 0x02; splice in the varint of 2**33 (a long, not an int)
    tail = valid.rindex(b"\x02\x00")  # register_writes then latency_ms=null
    forged = valid[:tail] + b"\x80\x80\x80\x80\x40" + valid[tail + 1 :]
    with pytest.raises(CorruptEventError, match="register_writes"):
        CODEC.decode(forged)


def test_decode_as() -> None:
    assert CODEC.decode_as("SiteTelemetry", _valid())["site_id"] == "site-0001"
    with pytest.raises(WrongEventTypeError, match="expected SiteFault, got SiteTelemetry"):
        CODEC.decode_as("SiteFault", _valid())
    with pytest.raises(UnknownEventError):
        CODEC.decode_as("Nope", _valid())


# ------------------------------------------------------------------ encode errors

ENCODE_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("text as double", {"soc_pct": "five"}, "soc_pct: expected a number"),
    ("missing required", {"soc_pct": None}, "soc_pct"),
    ("unknown enum symbol", {"mode": "TURBO"}, "mode: expected a SiteMode symbol"),
    ("int as string", {"site_id": 7}, "site_id: expected string"),
    ("non-uuid event_id", {"event_id": "not-a-uuid"}, "event_id: expected a canonical UUID"),
    ("surrogate", {"site_id": "\ud800"}, "site_id: expected a string encodable as UTF-8"),
]


@pytest.mark.parametrize(
    ("changes", "says"), [pytest.param(c, s, id=i) for i, c, s in ENCODE_ERRORS]
)
def test_encode_errors_are_invalid_event_with_the_field(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidEventError, match=says):
        CODEC.encode("SiteTelemetry", telemetry(**changes))


def test_encode_unknown_event() -> None:
    with pytest.raises(UnknownEventError, match="known: CommandResult"):
        CODEC.encode("Nope", {})


def test_encode_is_fastavro_lax_but_validate_and_strict_codecs_are_strict() -> None:
    lax = telemetry(soc_pct="55", faulted=1)  # numeric text for double, int for boolean
    decoded = CODEC.decode(CODEC.encode("SiteTelemetry", lax)).record
    assert (decoded["soc_pct"], decoded["faulted"]) == (55.0, True)
    with pytest.raises(InvalidEventError, match="soc_pct: expected a number"):
        Codec(REGISTRY, strict=True).encode("SiteTelemetry", lax)
    with pytest.raises(InvalidEventError, match="faulted: expected boolean"):
        CODEC.validate("SiteTelemetry", telemetry(faulted=1))
    with pytest.raises(InvalidEventError, match="timezone-aware"):
        CODEC.validate("SiteTelemetry", telemetry(event_time=dt.datetime(2026, 1, 1)))
    with pytest.raises(InvalidEventError, match="unknown field"):
        CODEC.validate("SiteTelemetry", telemetry(soc=1.0))


# ------------------------------------------------------------------ helpers


def test_new_event_fills_id_and_time() -> None:
    fields = {k: v for k, v in telemetry().items() if k not in ("event_id", "event_time")}
    before = dt.datetime.now(dt.UTC)
    record = CODEC.new_event("SiteTelemetry", **fields)
    assert isinstance(record["event_id"], uuid.UUID)
    assert record["event_id"].version == 4
    assert before <= record["event_time"] <= dt.datetime.now(dt.UTC)
    fixed = CODEC.new_event("SiteTelemetry", now=lambda: T0, **fields)
    assert fixed["event_time"] == T0
    assert CODEC.new_event("SiteTelemetry", **telemetry())["event_id"] == telemetry()["event_id"]
    with pytest.raises(InvalidEventError, match="site_id: missing"):
        CODEC.new_event("SiteTelemetry", **{k: v for k, v in fields.items() if k != "site_id"})


def test_confluent_framing() -> None:
    framed = CODEC.encode_confluent("SiteTelemetry", telemetry())
    assert CODEC.ids is not None
    schema_id = CODEC.ids.id_for(REGISTRY.current("SiteTelemetry").fingerprint)
    assert framed[:5] == b"\x00" + (schema_id or 0).to_bytes(4, "big")
    assert CODEC.decode(framed) == CODEC.decode(_valid())
    with pytest.raises(UnknownSchemaIdError, match="configure a SchemaIdResolver"):
        NO_IDS.encode_confluent("SiteTelemetry", telemetry())
    with pytest.raises(UnknownSchemaIdError, match="no SchemaIdResolver"):
        NO_IDS.decode(framed)


def test_in_memory_schema_ids() -> None:
    fp = REGISTRY.current("SiteFault").fingerprint
    ids = InMemorySchemaIds({7: fp})
    assert (ids.id_for(fp), ids.fingerprint_for(7), ids.fingerprint_for(8)) == (7, fp, None)
    ids.register(7, fp)  # idempotent
    with pytest.raises(ValueError, match="already"):
        ids.register(7, b"\x01" * 8)
    with pytest.raises(ValueError, match="schema id"):
        ids.register(0, fp)
    with pytest.raises(ValueError, match="8 bytes"):
        ids.register(9, b"\x01")
    every = InMemorySchemaIds.for_registry(REGISTRY)
    versions = {fp for fp, _ in REGISTRY.fingerprints()}  # every version of every event
    assert len(versions) > len(REGISTRY)
    assert sorted(every.id_for(fp) or 0 for fp in versions) == list(range(1, len(versions) + 1))
