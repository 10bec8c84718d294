"""The codec's raw mode (``logical_types=False``) against the default mode.

- encoding: the same record, its datetimes as epoch microseconds and UUIDs as strings, gives
  byte-identical bytes in both modes, for every event type;
- decoding: any bytes at all give the same outcome in both modes: an ``EventDecodeError``
  in both (the class may differ when bytes hold several defects: the default reader stops at
  a bad timestamp, the raw reader at the end of the body), or the same record up to
  UUID -> ``str`` and datetime -> int microseconds;
- the raw record is valid (strict check), re-encodes to the same bytes, and its values are
  plain ``int``/``str`` (no ``datetime``, no ``uuid.UUID``).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import (
    Codec,
    CorruptEventError,
    Decoded,
    EventDecodeError,
    InMemorySchemaIds,
    InvalidEventError,
    SchemaRegistry,
    decode_raw,
    raw_codec,
)
from contract.rawform import canonical_uuid, compile_raw_guard, strip_logical_types
from contract.testing.strategies import records, site_telemetry_example

REGISTRY = SchemaRegistry.load()
IDS = InMemorySchemaIds.for_registry(REGISTRY)
LOGICAL = Codec(REGISTRY, IDS)
RAW = Codec(REGISTRY, IDS, logical_types=False)
EVENTS = REGISTRY.names()
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROS_MIN, MICROS_MAX = -62_135_596_800_000_000, 253_402_300_799_999_999


def to_raw(value: Any) -> Any:
    """The raw-mode spelling of a default-mode value (recursively)."""
    if isinstance(value, dict):
        return {k: to_raw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_raw(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return (value - EPOCH) // dt.timedelta(microseconds=1)
    return value


def no_logical_objects(value: Any) -> bool:
    if isinstance(value, dict):
        return all(no_logical_objects(v) for v in value.values())
    if isinstance(value, list):
        return all(no_logical_objects(v) for v in value)
    return not isinstance(value, (uuid.UUID, dt.datetime))


def outcome(codec: Codec, data: bytes) -> Decoded | EventDecodeError:
    try:
        return codec.decode(data)
    except EventDecodeError as exc:
        return exc


def assert_same_outcome(data: bytes) -> None:
    logical, raw = outcome(LOGICAL, data), outcome(RAW, data)
    if not isinstance(logical, Decoded):
        assert isinstance(raw, EventDecodeError)
        assert str(raw)  # every error says what is wrong
        return
    assert isinstance(raw, Decoded)
    assert (raw.name, raw.writer_version) == (logical.name, logical.writer_version)
    assert repr(raw.record) == repr(to_raw(logical.record))  # repr: NaN equals NaN
    assert no_logical_objects(raw.record)
    RAW.validate(raw.name, raw.record)
    assert RAW.encode(raw.name, raw.record) == LOGICAL.encode(logical.name, logical.record)


@pytest.mark.parametrize("name", EVENTS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_both_modes_write_the_same_bytes(name: str, data: st.DataObject) -> None:
    record: dict[str, Any] = data.draw(records(REGISTRY.current(name).raw))
    encoded = LOGICAL.encode(name, record)
    assert RAW.encode(name, to_raw(record)) == encoded
    assert RAW.encode_confluent(name, to_raw(record)) == LOGICAL.encode_confluent(name, record)
    assert_same_outcome(encoded)


@pytest.mark.parametrize("name", EVENTS)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_data=st.data())
def test_mutations_give_the_same_outcome(name: str, record_data: st.DataObject) -> None:
    valid = LOGICAL.encode(name, record_data.draw(records(REGISTRY.current(name).raw)))
    rng = random.Random(f"{name}-{len(valid)}")
    for cut in range(len(valid)):
        assert_same_outcome(valid[:cut])
    for _ in range(150):
        flipped = bytearray(valid)
        bit = rng.randrange(len(valid) * 8)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert_same_outcome(bytes(flipped))


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(EVENTS), st.binary(max_size=200))
def test_arbitrary_body_behind_a_valid_header(name: str, body: bytes) -> None:
    assert_same_outcome(b"\xc3\x01" + REGISTRY.current(name).fingerprint + body)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_same_outcome(data)


def _telemetry(**fields: Any) -> dict[str, Any]:
    return site_telemetry_example(**fields)


def _lax_bytes(**fields: Any) -> bytes:
    """Bytes a lax writer could put on the wire (no uuid check, any long)."""
    raw_writer = Codec(REGISTRY, logical_types=False)
    raw_writer._encoders["SiteTelemetry"] = raw_writer._encoders["SiteTelemetry"]._replace(
        uuid_fields=()
    )
    return raw_writer.encode("SiteTelemetry", _telemetry(**fields))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"event_time": MICROS_MIN}, None),
        ({"event_time": MICROS_MAX}, None),
        ({"event_time": MICROS_MIN - 1}, CorruptEventError),
        ({"event_time": MICROS_MAX + 1}, CorruptEventError),
        ({"ingest_time": MICROS_MAX + 1}, CorruptEventError),
        ({"ingest_time": -(2**63)}, CorruptEventError),
        ({"event_id": "not-a-uuid"}, CorruptEventError),
        ({"event_id": ""}, CorruptEventError),
        ({"event_id": "9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F"}, None),
        ({"event_id": "{9f1c2d3e4b5a4c6d8e7f0a1b2c3d4e5f}"}, None),
        ({"event_id": "urn:uuid:9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"}, None),
    ],
)
def test_logical_edge_values(fields: dict[str, Any], expected: type[Exception] | None) -> None:
    data = _lax_bytes(**fields)
    assert_same_outcome(data)
    if expected is None:
        record = RAW.decode(data).record
        assert record["event_id"] == "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"  # canonical
    else:
        with pytest.raises(expected):
            RAW.decode(data)


@pytest.mark.parametrize(
    "fields",
    [
        {"event_id": "not-a-uuid"},
        {"event_id": uuid.UUID(int=5)},  # raw mode takes the string form only
        {"event_time": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
        {"event_time": "1700000000000000"},
        {"soc_pct": "x"},
    ],
)
def test_raw_encode_refuses_with_a_typed_error(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventError):
        RAW.encode("SiteTelemetry", _telemetry(**fields))


def test_module_level_raw_codec() -> None:
    record = _telemetry()
    data = raw_codec().encode("SiteTelemetry", record)
    assert decode_raw(data).record == record | {
        "ingest_time": None,
        **dict.fromkeys(("frequency_hz", "capacity_kwh", "setpoint_kw")),
        "active_command_id": None,
        "reserve_armed": "NONE",
        "faulted": False,
        "baseline_kw": None,
        **dict.fromkeys(
            (
                "armed_fcr_n_kw",
                "armed_fcr_d_up_kw",
                "armed_fcr_d_down_kw",
                "armed_ffr_kw",
                "order_afrr_kw",
                "order_mfrr_kw",
            ),
            0.0,
        ),
    }
    assert raw_codec().logical_types is False


def test_strip_and_guard_helpers() -> None:
    schema = {
        "type": "record",
        "name": "X",
        "fields": [
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {
                "name": "ids",
                "type": {"type": "array", "items": {"type": "string", "logicalType": "uuid"}},
            },
            {"name": "either", "type": ["string", {"type": "string", "logicalType": "uuid"}]},
            {"name": "n", "type": "int"},
        ],
    }
    stripped = strip_logical_types(schema)
    assert "logicalType" not in repr(stripped)
    assert stripped["fields"][0]["type"] == {"type": "long"}
    guard = compile_raw_guard(schema)
    assert guard is not None
    value = {"ts": 0, "ids": ["9F1C2D3E4B5A4C6D8E7F0A1B2C3D4E5F"], "either": "anything", "n": 1}
    assert guard(value)["ids"] == ["9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"]
    assert value["either"] == "anything"  # ambiguous union branch: left alone
    for bad in ({"ts": MICROS_MAX + 1}, {"ids": ["nope"]}, {"n": 2**31}):
        with pytest.raises(InvalidEventError):
            guard({"ts": 0, "ids": [], "either": "", "n": 0} | bad)
    assert (
        canonical_uuid("9F1C2D3E4B5A4C6D8E7F0A1B2C3D4E5F") == "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
    )
    with pytest.raises(ValueError, match="UUID"):
        canonical_uuid("nope")
