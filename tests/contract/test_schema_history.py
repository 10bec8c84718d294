"""The repository's schemas: frozen in history, BACKWARD_TRANSITIVE, and conventional.

- every current ``.avsc`` equals its newest ``history/<Event>/v<N>.avsc`` (a schema change
  without a new history entry fails here; run ``flowerhub events freeze NAME``);
- statically (Avro resolution rules) and dynamically (records generated from each historical
  version, written with it, decoded by the codec into the current schema) every version
  stays readable;
- conventions every event shares (design.md "Events").
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, SchemaRegistry
from contract.evolution import check_backward_transitive, check_history
from contract.registry import SCHEMA_ROOT
from contract.topics import TOPICS, topic_for_event

REGISTRY = SchemaRegistry.load()
CODEC = Codec(REGISTRY, strict=True)
VERSIONS = [(name, old.version) for name in REGISTRY.names() for old in REGISTRY.history(name)]


def test_every_current_schema_is_frozen_in_history() -> None:
    assert check_history(SCHEMA_ROOT) == []


def test_backward_transitive_by_the_resolution_rules() -> None:
    assert VERSIONS, "history must hold at least v1 of every event"
    assert {name for name, _ in VERSIONS} == set(REGISTRY.names())
    assert check_backward_transitive(REGISTRY) == []


@pytest.mark.parametrize(("name", "version"), VERSIONS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_backward_transitive_on_generated_records(
    name: str, version: int, data: st.DataObject
) -> None:
    from contract.testing.strategies import records

    old = REGISTRY.history(name)[version - 1]
    record: dict[str, Any] = data.draw(records(old.raw))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, old.parsed, record)
    decoded = CODEC.decode(b"\xc3\x01" + old.fingerprint + body.getvalue())
    assert decoded.name == name
    CODEC.validate(name, decoded.record)  # a valid record of the *current* schema


def _field(schema: Any, name: str) -> dict[str, Any]:
    matches = [f for f in schema["fields"] if f["name"] == name]
    assert matches, f"{schema['name']} has no field {name}"
    found: dict[str, Any] = matches[0]
    return found


@pytest.mark.parametrize("name", REGISTRY.names())
def test_event_conventions(name: str) -> None:
    raw = REGISTRY.current(name).raw
    assert raw["namespace"] == "flowerhub"
    assert raw.get("doc"), f"{name} needs a doc"
    assert _field(raw, "event_id")["type"] == {"type": "string", "logicalType": "uuid"}
    assert _field(raw, "event_time")["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    ingest = _field(raw, "ingest_time")
    assert ingest["default"] is None
    for field in raw["fields"]:
        assert field.get("doc"), f"{name}.{field['name']} needs a doc (units and signs)"
        if field["name"].endswith(("_kw", "_mw")) and field["type"] in (
            "double",
            ["null", "double"],
        ):
            assert "kW" in field["doc"] or "MW" in field["doc"], f"{name}.{field['name']}: unit"


def test_every_event_has_exactly_one_topic_and_its_key_exists() -> None:
    carried = [e for t in TOPICS for e in (t.value_event, *t.also_carries)]
    assert sorted(carried) == sorted(REGISTRY.names())
    for name in REGISTRY.names():
        row = topic_for_event(name)
        if row.key_field is not None and name == row.value_event:
            assert _field(REGISTRY.current(name).raw, row.key_field)["type"] == "string"
