"""decode(encode(r)) == r for every event type, on records generated from the schemas."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, InMemorySchemaIds, SchemaRegistry
from contract.testing.strategies import records, with_defaults

REGISTRY = SchemaRegistry.load()
CODEC = Codec(REGISTRY, InMemorySchemaIds.for_registry(REGISTRY))
EVENTS = REGISTRY.names()


def test_every_event_type_is_covered() -> None:
    assert len(EVENTS) == 13
    assert {"SiteTelemetry", "SiteCommand", "DeadLetter", "FleetState"} <= set(EVENTS)


@pytest.mark.parametrize("name", EVENTS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_single_object_round_trip(name: str, data: st.DataObject) -> None:
    schema = REGISTRY.current(name)
    record: dict[str, Any] = data.draw(records(schema.raw))
    CODEC.validate(name, record)  # the strategy only makes records the strict check accepts
    encoded = CODEC.encode(name, record)
    assert encoded[:2] == b"\xc3\x01"
    assert encoded[2:10] == schema.fingerprint
    decoded = CODEC.decode(encoded)
    assert decoded.name == name
    assert decoded.writer_version == schema.version
    assert decoded.record == with_defaults(schema.raw, record)
    assert CODEC.decode_as(name, encoded) == decoded.record


@pytest.mark.parametrize("name", EVENTS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_confluent_round_trip_has_the_same_body(name: str, data: st.DataObject) -> None:
    schema = REGISTRY.current(name)
    record: dict[str, Any] = data.draw(records(schema.raw))
    framed = CODEC.encode_confluent(name, record)
    assert framed[0] == 0
    assert CODEC.ids is not None
    assert int.from_bytes(framed[1:5], "big") == CODEC.ids.id_for(schema.fingerprint)
    assert framed[5:] == CODEC.encode(name, record)[10:]
    assert CODEC.decode(framed).record == with_defaults(schema.raw, record)
