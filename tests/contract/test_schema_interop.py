"""Interop with the stock Apache Avro Python package (``avro``), both directions.

- our single-object body decodes with ``avro.io.DatumReader`` given the ``.avsc``;
- bytes written by ``avro.io.DatumWriter``, framed with the fingerprint, decode with our codec;
- our fingerprints equal ``avro``'s ``Schema.fingerprint("CRC-64-AVRO")`` once logical types
  are stripped. ``avro`` 1.12 keeps ``{"type": "long"}`` for a logical-typed primitive in its
  canonical form, where Java and fastavro (and we) write ``"long"``; see contract/README.md.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from typing import Any

import avro.io
import avro.schema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, SchemaRegistry
from contract.registry import fingerprint
from contract.testing.strategies import records, with_defaults

REGISTRY = SchemaRegistry.load()
CODEC = Codec(REGISTRY)
EVENTS = REGISTRY.names()
AVRO_SCHEMAS = {name: avro.schema.parse(REGISTRY.current(name).path.read_text()) for name in EVENTS}


def normalise(value: Any) -> Any:
    """``avro`` reads uuid as str; we read uuid.UUID. Everything else compares as is."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def strip_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


@pytest.mark.parametrize("name", EVENTS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_our_body_decodes_with_stock_avro(name: str, data: st.DataObject) -> None:
    raw = REGISTRY.current(name).raw
    record = data.draw(records(raw))
    encoded = CODEC.encode(name, record)
    body = io.BytesIO(encoded[10:])
    theirs = avro.io.DatumReader(AVRO_SCHEMAS[name]).read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(encoded) - 10
    assert theirs == normalise(with_defaults(raw, record))


@pytest.mark.parametrize("name", EVENTS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_stock_avro_bytes_decode_with_our_codec(name: str, data: st.DataObject) -> None:
    schema = REGISTRY.current(name)
    record = with_defaults(schema.raw, data.draw(records(schema.raw)))
    body = io.BytesIO()
    avro.io.DatumWriter(AVRO_SCHEMAS[name]).write(normalise(record), avro.io.BinaryEncoder(body))
    framed = b"\xc3\x01" + schema.fingerprint + body.getvalue()
    decoded = CODEC.decode(framed)
    assert decoded.name == name
    assert decoded.record == record
    assert framed == CODEC.encode(name, record)  # byte-identical bodies


@pytest.mark.parametrize("name", EVENTS)
def test_fingerprint_agrees_with_stock_avro(name: str) -> None:
    raw = REGISTRY.current(name).raw
    plain = strip_logical_types(copy.deepcopy(dict(raw)))
    theirs = avro.schema.parse(json.dumps(plain)).fingerprint("CRC-64-AVRO")
    assert fingerprint(plain) == bytes(theirs)
    # logical types are not part of the Parsing Canonical Form: same fingerprint as ours
    assert fingerprint(plain) == REGISTRY.current(name).fingerprint
