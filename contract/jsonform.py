"""Records <-> plain JSON for people (the ``flowerhub events`` debugging commands).

Not Avro's JSON encoding: unions are written bare (no ``{"double": 1.0}`` wrapper).

- ``timestamp-*``: ISO-8601 text with an offset (``2026-11-24T01:00:00+00:00``) or an int;
- ``uuid``: canonical text; ``bytes``/``fixed``: hex text;
- everything else as JSON has it (numbers, strings, booleans, null, lists, objects).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from contract.errors import InvalidEventError

_TIMESTAMPS = ("timestamp-micros", "timestamp-millis")


def to_jsonable(value: Any) -> Any:
    """A decoded record (or any part of it) as JSON-serialisable data."""
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


class _FromJson:
    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def convert(self, schema: Any, value: Any, path: str) -> Any:  # noqa: PLR0911  # per type
        if isinstance(schema, list):
            return self._union(schema, value, path)
        if isinstance(schema, str):
            if schema in self.named:
                return self.convert(self.named[schema], value, path)
            if schema in ("bytes",) and isinstance(value, str):
                return self._hex(value, path)
            return value
        kind = schema["type"]
        if kind in ("record", "error", "enum", "fixed"):
            name = str(schema["name"])
            self.named[name] = schema
            self.named[f"{schema.get('namespace', 'flowerhub')}.{name}"] = schema
        if schema.get("logicalType") in _TIMESTAMPS and isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                raise InvalidEventError(f"{path}: {value!r} is not an ISO-8601 time") from None
        if kind == "fixed" and isinstance(value, str):
            return self._hex(value, path)
        if kind in ("record", "error") and isinstance(value, Mapping):
            fields = {f["name"]: f["type"] for f in schema["fields"]}
            return {
                k: self.convert(fields[k], v, f"{path}.{k}") if k in fields else v
                for k, v in value.items()
            }
        if kind == "array" and isinstance(value, list):
            return [self.convert(schema["items"], v, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "map" and isinstance(value, Mapping):
            return {
                k: self.convert(schema["values"], v, f"{path}[{k!r}]") for k, v in value.items()
            }
        if isinstance(kind, (dict, list)):
            return self.convert(kind, value, path)
        return self.convert(kind, value, path) if kind in self.named else value

    def _union(self, branches: list[Any], value: Any, path: str) -> Any:
        if value is None:
            return None
        for branch in branches:
            if branch == "null":
                continue
            try:
                return self.convert(branch, value, path)
            except InvalidEventError:
                continue
        return value

    @staticmethod
    def _hex(value: str, path: str) -> bytes:
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise InvalidEventError(f"{path}: bytes are written as hex, got {value!r}") from None


def from_jsonable(schema: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object (as ``to_jsonable`` writes it) as a record for ``encode``."""
    if not isinstance(value, Mapping):
        raise InvalidEventError(f"{schema['name']}: expected a JSON object")
    converted: dict[str, Any] = _FromJson().convert(dict(schema), value, str(schema["name"]))
    return converted
