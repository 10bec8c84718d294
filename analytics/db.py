"""DuckDB over the event-log archive: one connection, views kept apart by clock.

``connect(archive_dir)`` returns a connection with:

- ``archive_rows``: every stored row of every part file (the raw archive schema,
  :data:`analytics.archive.writer.ARCHIVE_COLUMNS`); read through a glob, so files the
  archiver adds later are seen by the next query without reconnecting;
- the views of ``analytics/views/*.sql`` (run in file-name order): ``events``,
  ``undecodable``, ``archive_coverage``, ``event_lateness``, and the table macros
  ``topic_events(topic)`` and ``topic_window(topic, since, until)``;
- one view per event type of the Avro contract (``schemas/<domain>/<Event>.avsc``), named
  in snake case (``SiteTelemetry`` -> ``site_telemetry``), with every schema field as a
  typed column, generated from the ``.avsc`` files so the views cannot drift from them.

``event_time`` (when it happened), ``ingest_time`` (when we learned it, where that differs)
and ``kafka_timestamp`` (the log's own time) are separate columns everywhere; all naive UTC.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.archive.compact import covered_parts, live_parts
from analytics.archive.layout import PART_SUFFIX, iter_parts
from analytics.archive.writer import ARCHIVE_COLUMNS

VIEWS_DIR = Path(__file__).parent / "views"
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
_TIME_COLUMNS = ("event_time", "ingest_time")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ArchiveViewError(ValueError):
    """The archive or a schema cannot be turned into views."""


@dataclass(frozen=True)
class FieldColumn:
    """One Avro field as a typed view column."""

    name: str
    sql: str  # expression over the JSON ``payload``


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def snake_case(name: str) -> str:
    """``SiteTelemetry`` -> ``site_telemetry``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _non_null(avro_type: object) -> object:
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        return branches[0] if len(branches) == 1 else {"type": "union"}
    return avro_type


def field_expression(name: str, avro_type: object) -> str:
    """DuckDB expression extracting field ``name`` of Avro type ``avro_type`` from ``payload``.

    Follows the payload JSON conventions of :mod:`analytics.archive.rows`.
    """
    if not _NAME_RE.fullmatch(name):
        raise ArchiveViewError(f"not an Avro field name: {name!r}")
    text = f"(payload->>'$.{name}')"
    kind = _non_null(avro_type)
    logical = kind.get("logicalType") if isinstance(kind, dict) else None
    base = kind.get("type") if isinstance(kind, dict) else kind
    if logical == "timestamp-micros":
        return f"make_timestamp(CAST({text} AS BIGINT))"
    if logical == "timestamp-millis":
        return f"make_timestamp(CAST({text} AS BIGINT))"  # archived as micros (datetime)
    if logical == "date":
        return f"(DATE '1970-01-01' + CAST({text} AS INTEGER))"
    scalar = {
        "string": "VARCHAR",
        "enum": "VARCHAR",
        "int": "INTEGER",
        "long": "BIGINT",
        "float": "FLOAT",
        "double": "DOUBLE",
        "boolean": "BOOLEAN",
    }
    if isinstance(base, str) and base in scalar:
        return f"CAST({text} AS {scalar[base]})"
    if base in {"bytes", "fixed"}:
        return f"unhex({text})"
    return f"(payload->'$.{name}')"  # records, arrays, maps, multi-branch unions: JSON


@dataclass(frozen=True)
class EventSchema:
    """The parts of one ``.avsc`` record schema the views need."""

    name: str
    full_name: str
    fields: tuple[tuple[str, object], ...]

    @property
    def view_name(self) -> str:
        return snake_case(self.name)

    def columns(self) -> list[FieldColumn]:
        return [
            FieldColumn(name, field_expression(name, kind))
            for name, kind in self.fields
            if name not in _TIME_COLUMNS
        ]


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


def event_view_sql(schema: EventSchema) -> str:
    """``CREATE VIEW`` for one event type over ``events`` (see module doc)."""
    if not _NAME_RE.fullmatch(schema.view_name):
        raise ArchiveViewError(f"event name unusable as a view name: {schema.name!r}")
    columns = ",\n    ".join(f'{col.sql} AS "{col.name}"' for col in schema.columns())
    names = ", ".join(sql_string(n) for n in sorted({schema.name, schema.full_name}))
    return (
        f"CREATE OR REPLACE VIEW {schema.view_name} AS\nSELECT\n"
        '    topic, "partition", "offset", key, event_time, ingest_time, known_time,\n'
        f"    kafka_timestamp, archived_at,\n    {columns}\n"
        f"FROM events\nWHERE event_name IN ({names})"
    )


def archive_rows_sql(archive_dir: Path) -> str:
    """``CREATE VIEW archive_rows``: a glob over the part files, or a typed empty view."""
    parts = list(iter_parts(archive_dir))
    if not parts:
        cols = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in ARCHIVE_COLUMNS)
        return f"CREATE OR REPLACE VIEW archive_rows AS SELECT {cols} WHERE false"
    if covered_parts(parts):  # an interrupted compaction: list the live files explicitly
        live = live_parts(archive_dir)
        files = "[" + ", ".join(sql_string(str(p.path.resolve())) for p in live) + "]"
    else:  # a glob: files added later are seen by the next query
        files = sql_string(
            str(archive_dir.resolve() / "topic=*" / "hour=*" / f"part-*{PART_SUFFIX}")
        )
    return (
        "CREATE OR REPLACE VIEW archive_rows AS SELECT * FROM read_parquet("  # noqa: S608  # escaped literals
        f"{files}, hive_partitioning = false, union_by_name = true)"
    )


def view_statements(archive_dir: Path, schemas_dir: Path = SCHEMAS_DIR) -> Iterator[str]:
    """Every statement :func:`connect` runs, in order."""
    yield archive_rows_sql(archive_dir)
    for path in sorted(VIEWS_DIR.glob("*.sql")):
        yield path.read_text(encoding="utf-8")
    for schema in load_event_schemas(schemas_dir):
        yield event_view_sql(schema)


def create_views(
    con: duckdb.DuckDBPyConnection, archive_dir: Path, schemas_dir: Path = SCHEMAS_DIR
) -> None:
    """(Re)create every view on ``con``; call again once a first file exists."""
    for statement in view_statements(archive_dir, schemas_dir):
        con.execute(statement)


def connect(
    archive_dir: Path | str, *, database: str = ":memory:", schemas_dir: Path = SCHEMAS_DIR
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the archive views (see module doc)."""
    root = Path(archive_dir)
    if root.exists() and not root.is_dir():
        raise ArchiveViewError(f"not a directory: {root}")
    con = duckdb.connect(database)
    try:
        create_views(con, root, schemas_dir)
    except Exception:
        con.close()
        raise
    return con
