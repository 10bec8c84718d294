"""Strict record validation, compiled once per schema into nested checker functions.

Stricter than fastavro's writer, which coerces (``"5"`` or ``True`` into a double) and treats
naive datetimes as UTC. Here:

- ``boolean`` is a ``bool``; ``int``/``long`` an ``int`` (not ``bool``) in range;
  ``float``/``double`` an ``int`` or ``float`` (not ``bool``; NaN and infinities are valid Avro);
- ``string`` a ``str`` encodable as UTF-8; ``uuid`` a ``uuid.UUID`` or a canonical UUID string;
- ``timestamp-micros``/``-millis`` a timezone-aware ``datetime``, or an ``int`` epoch count
  within the years 1..9999 (what a reader can turn back into a datetime);
- ``enum`` one of the symbols; ``bytes`` ``bytes``/``bytearray``; ``fixed`` of the right size;
- a record a mapping with no unknown keys; a missing key is fine only when the field has a
  default; a union value must match one branch.

A failure raises :class:`contract.errors.InvalidEventError` naming the field path.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from contract.errors import InvalidEventError, SchemaDefinitionError

Check = Callable[[Any, str], None]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_MICROS_RANGE = (-62_135_596_800_000_000, 253_402_300_799_999_999)  # 0001-01-01..9999-12-31
_MILLIS_RANGE = (_MICROS_RANGE[0] // 1000, _MICROS_RANGE[1] // 1000)


def _fail(path: str, expected: str, value: Any) -> InvalidEventError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return InvalidEventError(f"{path}: expected {expected}, got {type(value).__name__} {shown}")


def _check_null(value: Any, path: str) -> None:
    if value is not None:
        raise _fail(path, "null", value)


def _check_boolean(value: Any, path: str) -> None:
    if type(value) is not bool:
        raise _fail(path, "boolean", value)


def _int_check(name: str, bounds: tuple[int, int]) -> Check:
    low, high = bounds

    def check(value: Any, path: str) -> None:
        if type(value) is bool or not isinstance(value, int):
            raise _fail(path, name, value)
        if not low <= value <= high:
            raise _fail(path, f"{name} in [{low}, {high}]", value)

    return check


def _check_number(value: Any, path: str) -> None:
    if type(value) is bool or not isinstance(value, (int, float)):
        raise _fail(path, "a number (int or float)", value)


def _check_bytes(value: Any, path: str) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise _fail(path, "bytes", value)


def _check_string(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _fail(path, "string", value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(path, "a string encodable as UTF-8", value) from None


def _check_uuid(value: Any, path: str) -> None:
    if isinstance(value, uuid.UUID):
        return
    if not isinstance(value, str):
        raise _fail(path, "uuid (uuid.UUID or canonical string)", value)
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise _fail(path, "a canonical UUID string", value) from None
    if str(parsed) != value.lower():
        raise _fail(path, "a canonical UUID string (8-4-4-4-12 hex)", value)


def _timestamp_check(name: str, bounds: tuple[int, int]) -> Check:
    as_int = _int_check(f"{name} (int)", bounds)

    def check(value: Any, path: str) -> None:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise _fail(path, f"{name}: a timezone-aware datetime (naive is ambiguous)", value)
            return
        as_int(value, path)

    return check


_PRIMITIVE_CHECKS: dict[str, Check] = {
    "null": _check_null,
    "boolean": _check_boolean,
    "int": _int_check("int", _INT32),
    "long": _int_check("long", _INT64),
    "float": _check_number,
    "double": _check_number,
    "bytes": _check_bytes,
    "string": _check_string,
}
_LOGICAL_CHECKS: dict[tuple[str, str], Check] = {
    ("string", "uuid"): _check_uuid,
    ("long", "timestamp-micros"): _timestamp_check("timestamp-micros", _MICROS_RANGE),
    ("long", "timestamp-millis"): _timestamp_check("timestamp-millis", _MILLIS_RANGE),
}


class _Compiler:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.named: dict[str, Check] = {}

    def _register(self, schema: Mapping[str, Any], check: Check) -> None:
        name = str(schema["name"])
        namespace = schema.get("namespace", self.namespace)
        self.named[name if "." in name else f"{namespace}.{name}"] = check
        self.named[name.rsplit(".", 1)[-1]] = check

    def compile(self, schema: Any) -> Check:  # noqa: PLR0911  # one return per Avro type
        if isinstance(schema, list):
            return self._union([self.compile(branch) for branch in schema], schema)
        if isinstance(schema, str):
            if schema in _PRIMITIVE_CHECKS:
                return _PRIMITIVE_CHECKS[schema]
            try:
                return self.named[schema]
            except KeyError:
                raise SchemaDefinitionError(f"unknown named type {schema!r}") from None
        kind = schema["type"]
        logical = _LOGICAL_CHECKS.get((kind, schema.get("logicalType", "")))
        if logical is not None:
            return logical
        if kind in ("record", "error"):
            return self._record(schema)
        if kind == "enum":
            return self._enum(schema)
        if kind == "array":
            return self._array(self.compile(schema["items"]))
        if kind == "map":
            return self._map(self.compile(schema["values"]))
        if kind == "fixed":
            return self._fixed(schema)
        return self.compile(kind)

    def _union(self, branches: list[Check], schema: list[Any]) -> Check:
        names = "|".join(b if isinstance(b, str) else str(b.get("name", b["type"])) for b in schema)

        def check(value: Any, path: str) -> None:
            for branch in branches:
                try:
                    branch(value, path)
                except InvalidEventError:
                    continue
                return
            raise _fail(path, f"one of {names}", value)

        return check

    def _enum(self, schema: Mapping[str, Any]) -> Check:
        symbols = frozenset(schema["symbols"])
        expected = f"a {schema['name']} symbol ({', '.join(schema['symbols'])})"

        def check(value: Any, path: str) -> None:
            if not isinstance(value, str) or value not in symbols:
                raise _fail(path, expected, value)

        self._register(schema, check)
        return check

    def _fixed(self, schema: Mapping[str, Any]) -> Check:
        size = int(schema["size"])

        def check(value: Any, path: str) -> None:
            if not isinstance(value, (bytes, bytearray)) or len(value) != size:
                raise _fail(path, f"{size} bytes", value)

        self._register(schema, check)
        return check

    @staticmethod
    def _array(items: Check) -> Check:
        def check(value: Any, path: str) -> None:
            if not isinstance(value, (list, tuple)):
                raise _fail(path, "array (list)", value)
            for index, item in enumerate(value):
                items(item, f"{path}[{index}]")

        return check

    @staticmethod
    def _map(values: Check) -> Check:
        def check(value: Any, path: str) -> None:
            if not isinstance(value, Mapping):
                raise _fail(path, "map (dict)", value)
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _fail(f"{path} key", "string", key)
                values(item, f"{path}[{key!r}]")

        return check

    def _record(self, schema: Mapping[str, Any]) -> Check:
        fields: list[tuple[str, bool, Check]] = []
        known: frozenset[str] = frozenset(f["name"] for f in schema["fields"])
        record_name = str(schema["name"])

        def check(value: Any, path: str) -> None:
            if not isinstance(value, Mapping):
                raise _fail(path, f"{record_name} record (mapping)", value)
            for name, has_default, field_check in fields:
                if name in value:
                    field_check(value[name], f"{path}.{name}")
                elif not has_default:
                    raise InvalidEventError(f"{path}.{name}: missing (the field has no default)")
            unknown = [k for k in value if k not in known]
            if unknown:
                raise InvalidEventError(
                    f"{path}: unknown field(s) {', '.join(map(repr, unknown))} for {record_name}"
                )

        self._register(schema, check)  # before the fields: records may refer to themselves
        fields.extend(
            (f["name"], "default" in f, self.compile(f["type"])) for f in schema["fields"]
        )
        return check


def compile_validator(schema: Mapping[str, Any]) -> Check:
    """A function ``check(record, path)`` raising InvalidEventError; ``schema`` is the raw JSON."""
    return _Compiler(str(schema.get("namespace", ""))).compile(dict(schema))


def _int32_guard(value: Any, path: str) -> None:
    if isinstance(value, int) and not _INT32[0] <= value <= _INT32[1]:
        raise InvalidEventError(f"{path}: int {value} outside the 32-bit range")


class _IntGuards:
    """Range checks for decoded ``int`` values only (fastavro reads any varint as an int).

    Everything else a reader returns is already well-typed, so decode checks just these
    paths; a schema without ``int`` gets no guard at all (zero cost on the hot path).
    A union is checked when exactly one non-null branch needs a guard.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.named: dict[str, Check | None] = {}

    def _register(self, schema: Mapping[str, Any], guard: Check | None) -> None:
        name = str(schema["name"])
        namespace = schema.get("namespace", self.namespace)
        self.named[name if "." in name else f"{namespace}.{name}"] = guard
        self.named[name.rsplit(".", 1)[-1]] = guard

    def build(self, schema: Any) -> Check | None:  # noqa: PLR0911  # one return per Avro type
        if isinstance(schema, list):
            guarded = [g for g in map(self.build, schema) if g is not None]
            return guarded[0] if len(guarded) == 1 and "long" not in schema else None
        if isinstance(schema, str):
            return _int32_guard if schema == "int" else self.named.get(schema)
        kind = schema["type"]
        if kind == "array":
            return self._each(self.build(schema["items"]), lambda v: v)
        if kind == "map":
            return self._each(self.build(schema["values"]), lambda v: v.values())
        if kind in ("record", "error"):
            return self._record(schema)
        if kind in ("enum", "fixed"):
            self._register(schema, None)
            return None
        return self.build(kind) if kind == "int" or not isinstance(kind, str) else None

    @staticmethod
    def _each(item: Check | None, values: Callable[[Any], Any]) -> Check | None:
        if item is None:
            return None

        def guard(value: Any, path: str) -> None:
            if isinstance(value, (list, dict)):
                for each in values(value):
                    item(each, f"{path}[]")

        return guard

    def _record(self, schema: Mapping[str, Any]) -> Check | None:
        self._register(schema, None)  # a self-reference is not followed
        fields = [(f["name"], self.build(f["type"])) for f in schema["fields"]]
        guarded = [(name, g) for name, g in fields if g is not None]
        if not guarded:
            return None

        def guard(value: Any, path: str) -> None:
            if isinstance(value, dict):
                for name, field_guard in guarded:
                    field_guard(value.get(name), f"{path}.{name}")

        self._register(schema, guard)
        return guard


def compile_int_guard(schema: Mapping[str, Any]) -> Check | None:
    """A check for the decoded ``int`` values of ``schema`` (None when it has no ``int``)."""
    return _IntGuards(str(schema.get("namespace", ""))).build(dict(schema))
