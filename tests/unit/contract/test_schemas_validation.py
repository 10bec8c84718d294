"""The strict validator, one row per Avro type and failure."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import pytest

from contract import InvalidEventError
from contract.validation import compile_int_guard, compile_validator

UTC_TIME = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
TS = {"type": "long", "logicalType": "timestamp-micros"}
UUID_T = {"type": "string", "logicalType": "uuid"}
ENUM = {"type": "enum", "name": "Mode", "symbols": ["A", "B"]}
FIXED = {"type": "fixed", "name": "Two", "size": 2}

VALID: list[tuple[Any, Any]] = [
    ("null", None),
    ("boolean", False),
    ("int", -(2**31)),
    ("long", 2**63 - 1),
    ("double", 1),
    ("double", math.inf),
    ("double", math.nan),
    ("float", 0.5),
    ("bytes", b"\x00"),
    ("string", "grüß"),
    (UUID_T, uuid.uuid4()),
    (UUID_T, "12345678-1234-5678-1234-567812345678"),
    (TS, UTC_TIME),
    (TS, UTC_TIME.astimezone(dt.timezone(dt.timedelta(hours=2)))),
    (TS, 0),
    (ENUM, "B"),
    (FIXED, b"ab"),
    ({"type": "array", "items": "int"}, [1, 2]),
    ({"type": "array", "items": "int"}, (1, 2)),
    ({"type": "map", "values": "string"}, {"k": "v"}),
    (["null", "double"], None),
    (["null", "double"], 2.5),
]

INVALID: list[tuple[Any, Any, str]] = [
    ("null", 0, "expected null"),
    ("boolean", 1, "expected boolean"),
    ("int", True, "expected int"),
    ("int", 2**31, r"int in \[-2147483648, 2147483647\]"),
    ("long", -(2**63) - 1, "long in"),
    ("double", "1.0", "expected a number"),
    ("double", False, "expected a number"),
    ("bytes", "ab", "expected bytes"),
    ("string", b"ab", "expected string"),
    ("string", "\udcff", "encodable as UTF-8"),
    (UUID_T, "12345678123456781234567812345678", "8-4-4-4-12"),
    (UUID_T, "nope", "canonical UUID string"),
    (UUID_T, 5, "uuid"),
    (TS, dt.datetime(2026, 1, 1), "timezone-aware"),
    (TS, 2**62, "timestamp-micros"),
    (TS, "2026-01-01", "timestamp-micros"),
    (ENUM, "C", r"a Mode symbol \(A, B\)"),
    (FIXED, b"abc", "2 bytes"),
    ({"type": "array", "items": "int"}, [1, "x"], r"\[1\]: expected int"),
    ({"type": "array", "items": "int"}, {1}, "array"),
    ({"type": "map", "values": "string"}, {1: "v"}, "key: expected string"),
    ({"type": "map", "values": "string"}, ["v"], "map"),
    (["null", "double"], "x", "one of null|double"),
]


def wrap(field_type: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}


@pytest.mark.parametrize(("field_type", "value"), VALID)
def test_valid_values(field_type: Any, value: Any) -> None:
    compile_validator(wrap(field_type))({"f": value}, "$")


@pytest.mark.parametrize(("field_type", "value", "says"), INVALID)
def test_invalid_values_name_the_path(field_type: Any, value: Any, says: str) -> None:
    with pytest.raises(InvalidEventError, match=r"^\$\.f" + ".*" + says):
        compile_validator(wrap(field_type))({"f": value}, "$")


def test_records_missing_unknown_defaults_and_references() -> None:
    schema = {
        "type": "record",
        "name": "Outer",
        "namespace": "flowerhub",
        "fields": [
            {"name": "a", "type": ENUM},
            {"name": "b", "type": "Mode", "default": "A"},
            {"name": "c", "type": {"type": "array", "items": "flowerhub.Mode"}},
        ],
    }
    check = compile_validator(schema)
    check({"a": "A", "c": ["B"]}, "Outer")
    with pytest.raises(InvalidEventError, match=r"Outer\.a: missing"):
        check({"c": []}, "Outer")
    with pytest.raises(InvalidEventError, match=r"unknown field\(s\) 'd'"):
        check({"a": "A", "c": [], "d": 1}, "Outer")
    with pytest.raises(InvalidEventError, match=r"Outer\.c\[0\]: expected a Mode symbol"):
        check({"a": "A", "c": ["X"]}, "Outer")
    with pytest.raises(InvalidEventError, match="Outer record"):
        check([("a", "A")], "Outer")


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(InvalidEventError) as caught:
        compile_validator(wrap("int"))({"f": "x" * 500}, "$")
    assert len(str(caught.value)) < 120


def test_int_guard_checks_only_ints() -> None:
    assert compile_int_guard(wrap("double")) is None
    assert compile_int_guard(wrap(["null", "long"])) is None
    nested = wrap({"type": "array", "items": wrap(["null", "int"])})
    guard = compile_int_guard(nested)
    assert guard is not None
    guard({"f": [{"f": None}, {"f": 2**31 - 1}]}, "$")
    with pytest.raises(InvalidEventError, match=r"\$\.f\[\]\.f: int 2147483648"):
        guard({"f": [{"f": 2**31}]}, "$")
