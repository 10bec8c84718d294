"""DuckDB over the event-log archive: one connection, views kept apart by clock.

``connect(archive_dir)`` returns a connection with:

- ``archive_rows``: every stored row of every part file (the raw archive schema,
  :data:`analytics.archive.writer.ARCHIVE_COLUMNS`, then ``fields_typed`` and the typed
  columns of :mod:`analytics.archive.schema` where the files have them); read through a
  glob, so files the archiver adds later are seen by the next query without reconnecting;
- the views of ``analytics/views/*.sql`` (run in file-name order): ``events``,
  ``undecodable``, ``archive_coverage``, ``event_lateness``, and the table macros
  ``topic_events(topic)`` and ``topic_window(topic, since, until)``;
- one view per event type of the Avro contract (``contract/<domain>/<Event>.avsc``), named
  in snake case (``SiteTelemetry`` -> ``site_telemetry``), with every schema field as a
  typed column, generated from the ``.avsc`` files so the views cannot drift from them.
  Scalar fields come straight from the archive's typed columns (columnar: only the
  columns a query names are read, and row groups outside its filters are skipped); rows
  of older files without them are parsed from ``payload`` (:func:`event_view_sql`).

:func:`scoped_event_views` builds the same event views over one topic's directories only
(the layout partitions by topic), as the audit does.

``event_time`` (when it happened), ``ingest_time`` (when we learned it, where that differs)
and ``kafka_timestamp`` (the log's own time) are separate columns everywhere; all naive UTC.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.archive.compact import covered_parts, live_parts
from analytics.archive.layout import PART_SUFFIX, check_topic, iter_parts
from analytics.archive.schema import (
    SCHEMAS_DIR,
    TYPED_MARKER,
    ArchiveViewError,
    EventSchema,
    event_layout,
    load_event_schemas,
    snake_case,
)
from analytics.archive.writer import ARCHIVE_COLUMNS

__all__ = [  # the schema names are defined in analytics.archive.schema, kept importable here
    "SCHEMAS_DIR",
    "VIEWS_DIR",
    "ArchiveViewError",
    "EventSchema",
    "FieldColumn",
    "archive_rows_sql",
    "connect",
    "create_views",
    "event_columns",
    "event_view_sql",
    "field_expression",
    "load_event_schemas",
    "scoped_event_views",
    "snake_case",
    "sql_string",
    "typed_expressions",
    "view_columns",
    "view_statements",
]

VIEWS_DIR = Path(__file__).parent / "views"
_TIME_COLUMNS = ("event_time", "ingest_time")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FieldColumn:
    """One Avro field as a typed view column."""

    name: str
    sql: str  # expression over the JSON ``payload``


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


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


def event_columns(schema: EventSchema) -> list[FieldColumn]:
    """Every field of ``schema`` but the archive's own time columns, extracted from JSON."""
    return [
        FieldColumn(name, field_expression(name, kind))
        for name, kind in schema.fields
        if name not in _TIME_COLUMNS
    ]


def typed_expressions(schema: EventSchema, available: Collection[str]) -> list[FieldColumn]:
    """The fields of ``schema`` from typed columns where ``available``, else from JSON."""
    layout = {f.field: f for f in event_layout(schema, skip=_TIME_COLUMNS).fields}
    out = []
    for col in event_columns(schema):
        typed = layout.get(col.name)
        if typed is not None and typed.column in available:
            out.append(FieldColumn(col.name, f'CAST("{typed.column}" AS {typed.duck_type})'))
        else:
            out.append(col)
    return out


_BASE = (
    'topic, "partition", "offset", key, event_time, ingest_time, '
    "coalesce(ingest_time, event_time) AS known_time, kafka_timestamp, archived_at"
)


def event_view_sql(
    schema: EventSchema,
    available: Collection[str] = (),
    *,
    source: str = "archive_rows",
    view: str | None = None,
) -> str:
    """``CREATE VIEW`` for one event type over ``source`` (default: every archived row).

    ``available``: the columns ``source`` has. Where the event's typed columns are among
    them, rows with ``fields_typed`` read them (a columnar scan, no JSON) and the other
    rows (older files) parse ``payload``: one ``UNION ALL`` whose branches each skip the
    other's row groups by their statistics, so neither reads the other's columns.
    """
    name = view or schema.view_name
    if not _NAME_RE.fullmatch(name) or not _NAME_RE.fullmatch(source):
        raise ArchiveViewError(f"event name unusable as a view name: {schema.name!r}")
    names = ", ".join(sql_string(n) for n in sorted({schema.name, schema.full_name}))
    where = f"decode_error IS NULL AND event_name IN ({names})"

    def select(columns: list[FieldColumn], cond: str) -> str:
        cols = ",\n    ".join(f'{col.sql} AS "{col.name}"' for col in columns)
        return f"SELECT\n    {_BASE},\n    {cols}\nFROM {source}\nWHERE {cond}"

    json_columns = event_columns(schema)
    typed = typed_expressions(schema, available)
    if TYPED_MARKER not in available or typed == json_columns:
        return f"CREATE OR REPLACE VIEW {name} AS\n{select(json_columns, where)}"
    return (
        f"CREATE OR REPLACE VIEW {name} AS\n{select(typed, f'{where} AND {TYPED_MARKER}')}\n"
        f"UNION ALL\n{select(json_columns, f'{where} AND {TYPED_MARKER} IS NULL')}"
    )


def _parquet_source(archive_dir: Path, topics: Iterable[str] | None) -> str | None:
    """``read_parquet(...)`` over the live part files (of ``topics``), None if there are none."""
    wanted = None if topics is None else sorted({check_topic(t) for t in topics})
    parts = list(iter_parts(archive_dir, wanted))
    if not parts:
        return None
    if covered_parts(parts):  # an interrupted compaction: list the live files explicitly
        live = live_parts(archive_dir, wanted)
        files = "[" + ", ".join(sql_string(str(p.path.resolve())) for p in live) + "]"
    else:  # globs: files added later are seen by the next query
        root = archive_dir.resolve()
        dirs = ["*"] if wanted is None else sorted({p.topic for p in parts})
        globs = [str(root / f"topic={d}" / "hour=*" / f"part-*{PART_SUFFIX}") for d in dirs]
        files = "[" + ", ".join(sql_string(g) for g in globs) + "]"
    return f"read_parquet({files}, hive_partitioning = false, union_by_name = true)"


def archive_rows_sql(
    archive_dir: Path, topics: Iterable[str] | None = None, view: str = "archive_rows"
) -> str:
    """``CREATE VIEW archive_rows``: the part files (of ``topics``), or a typed empty view.

    With ``topics`` only those topics' directories are read (the layout partitions by
    topic, so other topics' files are never opened).
    """
    if not _NAME_RE.fullmatch(view):
        raise ArchiveViewError(f"not a view name: {view!r}")
    source = _parquet_source(archive_dir, topics)
    if source is None:
        cols = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in ARCHIVE_COLUMNS)
        return f"CREATE OR REPLACE VIEW {view} AS SELECT {cols} WHERE false"
    return f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {source}"  # noqa: S608  # escaped literals


def view_columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    """The column names of ``view`` (of the files it reads right now)."""
    return {str(row[0]) for row in con.execute(f"DESCRIBE {view}").fetchall()}


def view_statements(
    archive_dir: Path, schemas_dir: Path = SCHEMAS_DIR, available: Collection[str] = ()
) -> Iterator[str]:
    """Every statement :func:`connect` runs, in order (``available``: archive_rows' columns)."""
    yield archive_rows_sql(archive_dir)
    for path in sorted(VIEWS_DIR.glob("*.sql")):
        yield path.read_text(encoding="utf-8")
    for schema in load_event_schemas(schemas_dir):
        yield event_view_sql(schema, available)


def create_views(
    con: duckdb.DuckDBPyConnection, archive_dir: Path, schemas_dir: Path = SCHEMAS_DIR
) -> None:
    """(Re)create every view on ``con``; call again once a first file exists (or once the
    first file with typed columns exists: until then the event views parse ``payload``)."""
    con.execute(archive_rows_sql(archive_dir))
    available = view_columns(con, "archive_rows")
    for statement in view_statements(archive_dir, schemas_dir, available):
        con.execute(statement)


def scoped_event_views(
    con: duckdb.DuckDBPyConnection,
    archive_dir: Path,
    views: Iterable[tuple[str, str, str]],
    schemas_dir: Path = SCHEMAS_DIR,
) -> None:
    """Create event views over single topics: ``views`` holds (view, event name, topic).

    Each reads only its topic's directory, ``<archive>/topic=<topic>/hour=*/``; the raw
    rows of view ``v`` are the view ``v__rows`` (a plain Parquet scan). A filter on a
    column skips the row groups whose statistics exclude it; an unfiltered ``min`` or
    ``max`` still reads the whole column (DuckDB 2.0 does not answer it from the
    statistics), so a range's first event time is found by two pruned queries
    (:func:`analytics.audit.extract.first_telemetry_us`).
    """
    schemas = {s.name: s for s in load_event_schemas(schemas_dir)}
    for view, event, topic in views:
        if event not in schemas:
            raise ArchiveViewError(f"no schema for event {event!r}")
        rows = f"{view}__rows"
        con.execute(archive_rows_sql(archive_dir, [topic], rows))
        con.execute(event_view_sql(schemas[event], view_columns(con, rows), source=rows, view=view))


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
