"""Avro schema-resolution rules (reader_problems), table-driven, cross-checked with fastavro."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.evolution import reader_problems
from contract.testing.strategies import records


def rec(*fields: dict[str, Any], name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "flowerhub", "fields": list(fields)}


def f(name: str, field_type: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": field_type, **extra}


E2 = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
E1 = {"type": "enum", "name": "E", "symbols": ["A"]}
E1_DEFAULT = {"type": "enum", "name": "E", "symbols": ["A"], "default": "A"}
TS = {"type": "long", "logicalType": "timestamp-micros"}

# (id, writer, reader, expected problem substring or None when compatible)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = [
    ("same", rec(f("a", "int")), rec(f("a", "int")), None),
    ("int to long", rec(f("a", "int")), rec(f("a", "long")), None),
    ("int to double", rec(f("a", "int")), rec(f("a", "double")), None),
    ("long to int", rec(f("a", "long")), rec(f("a", "int")), "writer long cannot be read as int"),
    ("double to float", rec(f("a", "double")), rec(f("a", "float")), "cannot be read as float"),
    ("string to bytes", rec(f("a", "string")), rec(f("a", "bytes")), None),
    ("logical keeps base", rec(f("a", TS)), rec(f("a", "long")), None),
    ("field removed", rec(f("a", "int"), f("b", "int")), rec(f("a", "int")), None),
    (
        "field added with default",
        rec(f("a", "int")),
        rec(f("a", "int"), f("b", "int", default=0)),
        None,
    ),
    ("field added, no default", rec(f("a", "int")), rec(f("a", "int"), f("b", "int")), "R.b"),
    ("renamed via alias", rec(f("a", "int")), rec(f("z", "int", aliases=["a"])), None),
    ("enum grows", rec(f("e", E1)), rec(f("e", E2)), None),
    ("enum shrinks", rec(f("e", E2)), rec(f("e", E1)), "lacks symbols ['B']"),
    ("enum shrinks with default", rec(f("e", E2)), rec(f("e", E1_DEFAULT)), None),
    ("made nullable", rec(f("a", "int")), rec(f("a", ["null", "int"], default=None)), None),
    (
        "nullable to required",
        rec(f("a", ["null", "int"])),
        rec(f("a", "int")),
        "writer null cannot be read as int",
    ),
    ("union widened", rec(f("a", ["null", "int"])), rec(f("a", ["null", "int", "string"])), None),
    (
        "array items promote",
        rec(f("a", {"type": "array", "items": "int"})),
        rec(f("a", {"type": "array", "items": "long"})),
        None,
    ),
    (
        "array items narrow",
        rec(f("a", {"type": "array", "items": "long"})),
        rec(f("a", {"type": "array", "items": "int"})),
        "R.a[]",
    ),
    (
        "map to array",
        rec(f("a", {"type": "map", "values": "int"})),
        rec(f("a", {"type": "array", "items": "int"})),
        "writer map cannot be read as array",
    ),
    (
        "nested record renamed",
        rec(f("n", rec(f("x", "int"), name="N"))),
        rec(f("n", rec(f("x", "int"), name="M"))),
        "named type N read as M",
    ),
    (
        "fixed size change",
        rec(f("x", {"type": "fixed", "name": "F", "size": 2})),
        rec(f("x", {"type": "fixed", "name": "F", "size": 3})),
        "fixed size 2 read as 3",
    ),
    (
        "named reference resolved",
        rec(f("e", E2), f("e2", "E")),
        rec(f("e", E2), f("e2", "E")),
        None,
    ),
]


@pytest.mark.parametrize(
    ("writer", "reader", "problem"), [pytest.param(w, r, p, id=i) for i, w, r, p in CASES]
)
def test_reader_problems(
    writer: dict[str, Any], reader: dict[str, Any], problem: str | None
) -> None:
    found = reader_problems(writer, reader)
    if problem is None:
        assert found == []
    else:
        assert any(problem in p for p in found), found


COMPATIBLE = [pytest.param(w, r, id=i) for i, w, r, p in CASES if p is None]


@pytest.mark.parametrize(("writer", "reader"), COMPATIBLE)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_compatible_pairs_really_resolve_in_fastavro(
    writer: dict[str, Any], reader: dict[str, Any], data: st.DataObject
) -> None:
    """The static rules and the real reader agree: every 'compatible' pair reads back."""
    record = data.draw(records(writer))
    buffer = io.BytesIO()
    parsed_writer = fastavro.parse_schema(writer)
    fastavro.schemaless_writer(buffer, parsed_writer, record)
    buffer.seek(0)
    fastavro.schemaless_reader(buffer, parsed_writer, fastavro.parse_schema(reader))
    assert buffer.tell() == len(buffer.getvalue())
