"""The codec's raw mode: schemas read and written with their logical types stripped.

On the wire ``timestamp-micros`` is a plain ``long`` and ``uuid`` a plain ``string``, and the
Parsing Canonical Form (hence the fingerprint) drops ``logicalType``. So reading and writing
with the logical types removed from the parsed schema is byte-identical on the wire and skips
fastavro's per-value conversions (``datetime`` and ``uuid.UUID`` objects): timestamps stay
``int`` microseconds since the epoch, uuids stay ``str``.

What the stripped reader cannot check by itself, :func:`compile_raw_guard` does after the
read, so raw decoding accepts exactly the bytes the logical decoder accepts:

- a ``timestamp-micros``/``-millis`` long must be within the years 1..9999 (what a
  ``datetime`` can hold; the logical reader fails outside);
- a ``uuid`` string must parse as a UUID; a non-canonical spelling (upper case, braces, no
  hyphens...) is replaced by its canonical lower-case form, i.e. ``str(uuid.UUID(text))``,
  the same string the logical reader's value prints as;
- an ``int`` must be within 32 bits (as ``contract.validation.compile_int_guard``).

The guard mutates the decoded containers in place (only on the rare non-canonical uuid)
and raises :class:`contract.errors.InvalidEventError` naming the path.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from contract.errors import InvalidEventError

# Returns the value to keep (the same object unless a uuid was normalised). Paths in error
# messages are fixed when compiling (array items show as ``[]``; a named type shows the path
# where it was first defined).
Fix = Callable[[Any], Any]

_INT32 = (-(2**31), 2**31 - 1)
_MICROS_RANGE = (-62_135_596_800_000_000, 253_402_300_799_999_999)  # 0001-01-01..9999-12-31
_MILLIS_RANGE = (_MICROS_RANGE[0] // 1000, _MICROS_RANGE[1] // 1000)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_canonical = _CANONICAL_UUID.fullmatch

# The Python type family each Avro type decodes to: a union branch is guarded only when no
# other branch decodes to the same family (else a value could belong to either).
_FAMILIES = {
    "null": "none",
    "boolean": "bool",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "bytes": "bytes",
    "string": "str",
    "enum": "str",
    "fixed": "bytes",
    "record": "dict",
    "error": "dict",
    "map": "dict",
    "array": "list",
}


def strip_logical_types(schema: Any) -> Any:
    """A copy of the JSON schema without any ``logicalType`` key (at every depth)."""
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, Mapping):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def canonical_uuid(value: str) -> str:
    """``value`` in canonical lower-case 8-4-4-4-12 form; ValueError when it is no UUID."""
    return value if _canonical(value) is not None else str(uuid.UUID(value))


def _uuid_fix(path: str) -> Fix:
    def fix(value: Any) -> Any:
        if not isinstance(value, str) or _canonical(value) is not None:
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise InvalidEventError(f"{path}: {value[:60]!r} is not a UUID") from None

    return fix


def _range_fix(what: str, low: int, high: int) -> Callable[[str], Fix]:
    def compile_fix(path: str) -> Fix:
        def fix(value: Any) -> Any:
            if isinstance(value, int) and not low <= value <= high:
                raise InvalidEventError(f"{path}: {what} {value} outside [{low}, {high}]")
            return value

        return fix

    return compile_fix


_PRIMITIVE_FIXES: dict[str, Callable[[str], Fix]] = {"int": _range_fix("int", *_INT32)}
_LOGICAL_FIXES: dict[tuple[str, str], Callable[[str], Fix]] = {
    ("string", "uuid"): _uuid_fix,
    ("long", "timestamp-micros"): _range_fix("timestamp-micros", *_MICROS_RANGE),
    ("long", "timestamp-millis"): _range_fix("timestamp-millis", *_MILLIS_RANGE),
}


class _Guards:
    """Compiles a JSON schema into a :data:`Fix` (None where nothing needs checking)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.named: dict[str, Fix | None] = {}
        self.families: dict[str, str] = {}
        self.kinds: dict[Fix, str] = {}  # leaf fixes a record checks inline, not by a call

    def _register(self, schema: Mapping[str, Any], fix: Fix | None) -> None:
        name = str(schema["name"])
        namespace = schema.get("namespace", self.namespace)
        family = _FAMILIES[schema["type"]]
        for key in (name if "." in name else f"{namespace}.{name}", name.rsplit(".", 1)[-1]):
            self.named[key] = fix
            self.families[key] = family

    def family(self, schema: Any) -> str:
        """The Python type family ``schema`` decodes to ("union" for a nested union)."""
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, str):
            return _FAMILIES.get(schema) or self.families.get(schema, schema)
        kind = schema["type"]
        return _FAMILIES[kind] if isinstance(kind, str) and kind in _FAMILIES else self.family(kind)

    def build(self, schema: Any, path: str) -> Fix | None:  # noqa: PLR0911  # one per type
        if isinstance(schema, list):
            return self._union(schema, path)
        if isinstance(schema, str):
            primitive = _PRIMITIVE_FIXES.get(schema)
            return primitive(path) if primitive is not None else self.named.get(schema)
        kind = schema["type"]
        logical_type = schema.get("logicalType", "")
        logical = _LOGICAL_FIXES.get((kind, logical_type))
        if logical is not None:
            leaf = logical(path)
            self.kinds[leaf] = logical_type
            return leaf
        if kind == "array":
            return self._array(self.build(schema["items"], f"{path}[]"))
        if kind == "map":
            return self._map(self.build(schema["values"], f"{path}[]"))
        if kind in ("record", "error"):
            return self._record(schema, path)
        if kind in ("enum", "fixed"):
            self._register(schema, None)
            return None
        return self.build(kind, path)

    def _union(self, branches: list[Any], path: str) -> Fix | None:
        fixes = [self.build(b, path) for b in branches]
        families = [self.family(b) for b in branches]
        guarded = [
            fix
            for fix, family in zip(fixes, families, strict=True)
            if fix is not None and families.count(family) == 1
        ]
        return guarded[0] if len(guarded) == 1 else None

    @staticmethod
    def _array(item: Fix | None) -> Fix | None:
        if item is None:
            return None

        def fix(value: Any) -> Any:
            if isinstance(value, list):
                for i, each in enumerate(value):
                    value[i] = item(each)
            return value

        return fix

    @staticmethod
    def _map(item: Fix | None) -> Fix | None:
        if item is None:
            return None

        def fix(value: Any) -> Any:
            if isinstance(value, dict):
                for key, each in value.items():
                    value[key] = item(each)
            return value

        return fix

    def _record(self, schema: Mapping[str, Any], path: str) -> Fix | None:
        self._register(schema, None)  # a self-reference is not followed
        built = [
            (str(f["name"]), self.build(f["type"], f"{path}.{f['name']}")) for f in schema["fields"]
        ]
        by_name = {name: fix for name, fix in built if fix is not None}
        if not by_name:
            return None
        # the common leaves inline (the hot path: one bound check or one regex per field)
        inline = {f for f, kind in self.kinds.items() if kind in ("timestamp-micros", "uuid")}
        micros = tuple(
            name for name, fix in by_name.items() if self.kinds.get(fix) == "timestamp-micros"
        )
        uuids = tuple(name for name, fix in by_name.items() if self.kinds.get(fix) == "uuid")
        others = tuple((name, fix) for name, fix in by_name.items() if fix not in inline)
        low, high = _MICROS_RANGE

        def fix(value: Any) -> Any:
            if isinstance(value, dict):
                get = value.get
                for name in micros:
                    each = get(name)
                    if isinstance(each, int) and not low <= each <= high:
                        by_name[name](each)  # raises, naming the field
                for name in uuids:
                    each = get(name)
                    if isinstance(each, str) and _canonical(each) is None:
                        value[name] = by_name[name](each)
                for name, field_fix in others:
                    each = get(name)
                    if each is not None:
                        value[name] = field_fix(each)
            return value

        self._register(schema, fix)
        return fix


def compile_raw_guard(schema: Mapping[str, Any]) -> Fix | None:
    """The post-read check of a stripped read of ``schema`` (the raw JSON with its logical
    types); None when the schema has nothing to check."""
    return _Guards(str(schema.get("namespace", ""))).build(dict(schema), str(schema["name"]))
