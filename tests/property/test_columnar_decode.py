"""The columnar decoder (``contract.columnar``) against the raw codec, value for value.

- every current schema it compiles: for records drawn from the schema
  (``contract.testing.strategies``) every row decodes here, and each row equals the raw
  codec's record;
- corrupt, truncated or padded bytes never crash it: a row it decodes is one the raw codec
  decodes to the same record; a row the raw codec rejects is flagged (slow path);
- table: each structural fault is flagged, not guessed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, EventDecodeError, SchemaRegistry
from contract.columnar import ColumnarDecoder, UnsupportedSchemaError
from contract.testing.strategies import records, site_telemetry_example

REGISTRY = SchemaRegistry.load()
LOGICAL = Codec(REGISTRY)
RAW = Codec(REGISTRY, logical_types=False)


def _decoder(name: str) -> ColumnarDecoder | None:
    schema = REGISTRY.current(name)
    try:
        return ColumnarDecoder(schema.raw, schema.fingerprint)
    except UnsupportedSchemaError:
        return None


SUPPORTED = [n for n in REGISTRY.names() if _decoder(n) is not None]
TELEMETRY = REGISTRY.current("SiteTelemetry")
DECODER = ColumnarDecoder(TELEMETRY.raw, TELEMETRY.fingerprint)


def _raw_or_none(value: object) -> dict[str, Any] | None:
    try:
        assert isinstance(value, bytes | None)
        decoded = RAW.decode(value)  # type: ignore[arg-type]  # None: the codec's own error
    except EventDecodeError:
        return None
    return decoded.record if decoded.name == "SiteTelemetry" else None


def _all_rows(n: int) -> np.ndarray[Any, np.dtype[np.intp]]:
    return np.arange(n)


def test_the_event_schemas_without_nesting_compile() -> None:
    assert {"SiteTelemetry", "FleetSetpoint", "DeadLetter", "CommandResult"} <= set(SUPPORTED)
    with pytest.raises(UnsupportedSchemaError, match="record"):
        _strict_decoder("SiteSetpoint")


def _strict_decoder(name: str) -> ColumnarDecoder:
    schema = REGISTRY.current(name)
    return ColumnarDecoder(schema.raw, schema.fingerprint)


@pytest.mark.parametrize("name", SUPPORTED)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_columns_equal_the_raw_codec(name: str, data: st.DataObject) -> None:
    schema = REGISTRY.current(name)
    drawn = data.draw(st.lists(records(schema.raw), min_size=1, max_size=12))
    values = [LOGICAL.encode(name, r) for r in drawn]
    batch = _strict_decoder(name).decode(values)
    assert batch.ok.all()
    got = batch.records(_all_rows(len(values)))
    assert got == [RAW.decode(v).record for v in values]


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 400)),
    st.tuples(st.just("flip"), st.integers(0, 400), st.integers(1, 255)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=3)),
    st.tuples(st.just("replace"), st.binary(max_size=40)),
)


def _mutate(value: bytes, how: tuple[Any, ...]) -> bytes:
    kind, args = how[0], how[1:]
    if kind == "truncate":
        cut: int = args[0]
        return value[: cut % (len(value) + 1)]
    if kind == "flip":
        at: int = args[0] % len(value)
        return value[:at] + bytes([value[at] ^ args[1]]) + value[at + 1 :]
    extra: bytes = args[0]
    return value + extra if kind == "append" else value[:10] + extra


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(records(TELEMETRY.raw), st.none() | mutation), min_size=1, max_size=10))
def test_corrupt_bytes_are_flagged_never_guessed(drawn: list[tuple[dict[str, Any], Any]]) -> None:
    values = [
        LOGICAL.encode("SiteTelemetry", r)
        if how is None
        else _mutate(LOGICAL.encode("SiteTelemetry", r), how)
        for r, how in drawn
    ]
    batch = DECODER.decode(values)
    ok_rows = np.flatnonzero(batch.ok)
    got = batch.records(ok_rows)
    for row, record in zip(ok_rows.tolist(), got, strict=True):
        assert repr(record) == repr(_raw_or_none(values[row]))  # repr: NaN-safe
    for row in np.flatnonzero(~batch.ok).tolist():
        if _raw_or_none(values[row]) is not None:  # flagged though the codec reads it
            assert values[row] not in (
                LOGICAL.encode("SiteTelemetry", r) for r, how in drawn if how is None
            )


def _body(**fields: Any) -> dict[str, Any]:
    return site_telemetry_example(**fields)


GOOD = RAW.encode("SiteTelemetry", _body())
# byte offsets in GOOD: header 10, event_id 1 + 36, event_time 8, ingest_time union 1
AT_INGEST = 10 + 37 + 8
AT_SITE = AT_INGEST + 1


def _at(offset: int, data: bytes) -> bytes:
    return GOOD[:offset] + data + GOOD[offset + len(data) :]


@pytest.mark.parametrize(
    ("case", "value"),
    [
        ("tombstone", None),
        ("not bytes", bytearray(GOOD)),
        ("empty", b""),
        ("header only", GOOD[:10]),
        ("other fingerprint", GOOD[:2] + bytes(8) + GOOD[10:]),
        ("confluent framing", b"\x00\x00\x00\x00\x01" + GOOD[10:]),
        ("trailing byte", GOOD + b"\x00"),
        ("truncated", GOOD[:-1]),
        ("union index 2", _at(AT_INGEST, b"\x04")),
        ("union index -1", _at(AT_INGEST, b"\x01")),
        ("negative length", _at(AT_SITE, b"\x01")),
        ("length past the end", _at(AT_SITE, b"\x7e")),
        # the last 49 bytes are v2 fields (a null union index, six doubles); faulted is before them
        ("boolean byte 2", GOOD[:-50] + b"\x02" + GOOD[-49:]),
        ("enum index -1", GOOD[:-53] + b"\x01" + GOOD[-52:]),
        ("uuid upper case", _at(11, b"9F")),
        ("bad utf-8", _at(AT_SITE + 1, b"\xff")),
        ("varint over 10 bytes", GOOD[:47] + b"\x80" * 10 + b"\x00" + GOOD[55:]),
        ("varint over 64 bits", GOOD[:47] + b"\xff" * 9 + b"\x02" + GOOD[55:]),
    ],
)
def test_structural_faults_are_flagged(case: str, value: object) -> None:
    batch = DECODER.decode([GOOD, value, GOOD])
    assert batch.ok.tolist() == [True, False, True], case
    assert batch.records(np.array([0, 2])) == [RAW.decode(GOOD).record] * 2


def test_only_the_decoders_own_writer_fingerprint_is_read() -> None:
    """A value of another writer version (here: a decoder for a later version, reading the
    current one) needs schema resolution: the codec's job."""
    later = ColumnarDecoder(TELEMETRY.raw, bytes(range(8)))
    assert not later.decode([GOOD]).ok.any()
    assert DECODER.decode([GOOD]).ok.all()
