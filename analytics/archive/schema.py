"""The Avro contract as the archive sees it: event schemas and their typed columns (pure).

Besides the decoded record as JSON (``payload``), every part file stores each *top-level
scalar field* of the events it holds as a typed column of its own, named
``<event_in_snake_case>__<field>`` (``site_telemetry__battery_power_kw DOUBLE``), derived
from the ``.avsc`` files, so that readers get columnar scans (projection and filter
pushdown) instead of parsing JSON. Scalar means: string (uuid included), enum, int, long,
float, double, boolean, a ``timestamp-micros``/``timestamp-millis`` long (TIMESTAMP) or a
``date`` int (DATE), alone or in a union with null. Records, arrays, maps, bytes and
multi-branch unions stay in ``payload`` only.

The column ``fields_typed`` (BOOLEAN) says which rows have them: TRUE on every decoded row
whose event has a column layout and whose values fit it. It is NULL on undecodable rows, on
a record whose value does not fit its column type (the payload is authoritative; never
dropped) and on every row of files written before typed columns existed: the views read
those from ``payload``, so older archives stay readable.

Only the columns of the events present in a file are written (a part file holds one topic,
so usually one event type); readers merge file schemas by name.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path

from analytics.archive.rows import timestamp_micros

SCHEMAS_DIR = Path(__file__).resolve().parent.parent.parent / "contract"
TYPED_MARKER = "fields_typed"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ArchiveViewError(ValueError):
    """The archive or a schema cannot be turned into views or typed columns."""


def snake_case(name: str) -> str:
    """``SiteTelemetry`` -> ``site_telemetry``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class EventSchema:
    """The parts of one ``.avsc`` record schema the archive and its views need."""

    name: str
    full_name: str
    fields: tuple[tuple[str, object], ...]

    @property
    def view_name(self) -> str:
        return snake_case(self.name)


def load_event_schemas(schemas_dir: Path = SCHEMAS_DIR) -> list[EventSchema]:
    """Every ``<domain>/<Event>.avsc`` record schema under ``schemas_dir``."""
    found = []
    for path in sorted(schemas_dir.glob("*/*.avsc")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ArchiveViewError(f"{path}: unreadable schema: {exc}") from exc
        if not isinstance(data, Mapping) or data.get("type") != "record":
            raise ArchiveViewError(f"{path}: not an Avro record schema")
        name = str(data["name"])
        namespace = data.get("namespace")
        fields = tuple((str(f["name"]), f["type"]) for f in data.get("fields", []))
        found.append(EventSchema(name, f"{namespace}.{name}" if namespace else name, fields))
    return found


class _UnfitError(Exception):
    """A value that does not fit its typed column (the row keeps its payload only)."""


def _string(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise _UnfitError


def _integer(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _UnfitError


def _real(value: object) -> object:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise _UnfitError


def _boolean(value: object) -> object:
    if isinstance(value, bool):
        return value
    raise _UnfitError


def _timestamp(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, int) and not isinstance(value, bool)):
        return timestamp_micros(value)
    raise _UnfitError


def _date(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise _UnfitError


Kind = tuple[str, Callable[[object], object], type | None]  # DuckDB type, converter, exact type

_SCALARS: dict[str, Kind] = {
    "string": ("VARCHAR", _string, str),
    "enum": ("VARCHAR", _string, str),
    "int": ("INTEGER", _integer, int),
    "long": ("BIGINT", _integer, int),
    "float": ("FLOAT", _real, float),
    "double": ("DOUBLE", _real, float),
    "boolean": ("BOOLEAN", _boolean, bool),
}
# timestamps go to the writer as microseconds and are cast to TIMESTAMP there
_LOGICAL: dict[str, Kind] = {
    "timestamp-micros": ("TIMESTAMP", _timestamp, None),
    "timestamp-millis": ("TIMESTAMP", _timestamp, None),
    "date": ("DATE", _date, None),
}


def scalar_kind(avro_type: object) -> Kind | None:
    """(DuckDB type, value converter, exact type) of a scalar Avro type, else None.

    Values of exactly the exact type fit as they are; others go through the converter.
    """
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        if len(branches) != 1:
            return None
        avro_type = branches[0]
    if isinstance(avro_type, Mapping):
        logical = avro_type.get("logicalType")
        base = avro_type.get("type")
        if isinstance(logical, str) and logical in _LOGICAL:
            expected = "int" if logical == "date" else "long"
            return _LOGICAL[logical] if base == expected else None
        if logical is not None and logical != "uuid":
            return None  # decimal, time-*, ...: JSON only
        avro_type = base
    if isinstance(avro_type, str) and avro_type in _SCALARS:
        return _SCALARS[avro_type]
    return None


@dataclass(frozen=True)
class TypedField:
    """One top-level scalar field stored as a typed column."""

    field: str
    column: str
    duck_type: str
    convert: Callable[[object], object]
    exact: type | None = None  # values of exactly this type are stored as they are


@dataclass(frozen=True)
class EventLayout:
    """The typed columns of one event type."""

    event: str
    fields: tuple[TypedField, ...]

    def values(self, record: Mapping[str, object]) -> tuple[object, ...] | None:
        """The record's typed values in column order; None when one does not fit its type."""
        out: list[object] = []
        get = record.get
        try:
            for f in self.fields:
                v = get(f.field)
                # the common case without a call: a value already of the column's own type
                out.append(v if v is None or type(v) is f.exact else f.convert(v))
        except _UnfitError:
            return None
        return tuple(out)


def typed_column(view_name: str, field: str) -> str:
    """Name of the typed column of ``field`` of the event whose view is ``view_name``."""
    if not _NAME_RE.fullmatch(view_name) or not _NAME_RE.fullmatch(field):
        raise ArchiveViewError(f"not usable as a column name: {view_name!r}, {field!r}")
    return f"{view_name}__{field}"


def event_layout(schema: EventSchema, skip: Sequence[str] = ()) -> EventLayout:
    """The typed columns of ``schema``: every top-level scalar field not in ``skip``."""
    fields = []
    for name, avro_type in schema.fields:
        kind = scalar_kind(avro_type)
        if kind is not None and name not in skip:
            fields.append(TypedField(name, typed_column(schema.view_name, name), *kind))
    return EventLayout(schema.name, tuple(fields))


# event_time / ingest_time are archive columns of every row already
ARCHIVE_TIME_FIELDS = ("event_time", "ingest_time")


def event_layouts(schemas: Sequence[EventSchema]) -> dict[str, EventLayout]:
    """Event name (short and namespaced) -> its typed columns."""
    out: dict[str, EventLayout] = {}
    for schema in schemas:
        layout = event_layout(schema, skip=ARCHIVE_TIME_FIELDS)
        out[schema.name] = layout
        out[schema.full_name] = layout
    return out


@cache
def default_layouts() -> dict[str, EventLayout]:
    """:func:`event_layouts` of the project's contract (``contract/``), read once."""
    return event_layouts(load_event_schemas(SCHEMAS_DIR))
