"""Append-only Parquet part files, partitioned by topic and hour (no Kafka here).

Why Parquet and not Avro object container files: DuckDB reads Parquet natively, while its
``avro`` extension is downloaded at run time from the DuckDB extension site (unreachable
here, and the ``duckdb-ext-avro`` wheel on PyPI is built for DuckDB 1.4, not the 2.x we
run). Parquet is written by DuckDB itself (``COPY ... TO ... (FORMAT parquet)`` over numpy
columns), so no new dependency. An Avro container can be appended to in place, but a
Parquet file cannot: append-only therefore means *append files*. Each flush writes one
immutable part per topic, hour and partition, first under a hidden temporary name, then
fsync + atomic rename + directory fsync. Consequences:

- crash safety: a reader or a restart sees only complete files; a crash mid-flush leaves at
  most a hidden ``.tmp`` file, deleted at the next start;
- readable while being written: DuckDB globs only ``part-*.parquet``;
- exact resume: each file name carries its partition and first/last offset (the same
  offsets are columns inside), so the archive itself says where to resume
  (:func:`analytics.archive.layout.recover_positions`), with no gap and no duplicate;
- many small files: ``flowerhub archive --out DIR --compact`` merges them into one file per
  topic, hour and partition (:mod:`analytics.archive.compact`, crash-safe as well).

The columns (:data:`ARCHIVE_COLUMNS`) are the one definition of the archive's base schema;
after them each file has ``fields_typed`` and the typed columns of the events it holds
(:mod:`analytics.archive.schema`: one column per top-level scalar field, so readers scan
columns instead of parsing ``payload``). The DuckDB views (``analytics/db.py``) build on
both. All timestamps are naive UTC.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt

from analytics.archive.layout import (
    TopicPartition,
    check_topic,
    hour_bucket,
    part_path,
    remove_temp_files,
    temp_path,
)
from analytics.archive.rows import ArchiveRow, headers_json
from analytics.archive.schema import TYPED_MARKER, EventLayout, default_layouts

# name -> DuckDB type; the order is the column order in every part file.
ARCHIVE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("topic", "VARCHAR"),
    ("partition", "INTEGER"),
    ("offset", "BIGINT"),
    ("kafka_timestamp", "TIMESTAMP"),
    ("timestamp_type", "SMALLINT"),
    ("key", "BLOB"),
    ("value", "BLOB"),
    ("headers", "VARCHAR"),
    ("event_name", "VARCHAR"),
    ("payload", "VARCHAR"),
    ("event_time", "TIMESTAMP"),
    ("ingest_time", "TIMESTAMP"),
    ("decode_error", "VARCHAR"),
    ("decode_reason", "VARCHAR"),
    ("archived_at", "TIMESTAMP"),
)

_NAT = np.iinfo(np.int64).min


class ArchiveWriteError(RuntimeError):
    """Rows that cannot be appended (offsets going backwards, foreign topic...)."""


def _micros_column(values: Sequence[int | None]) -> npt.NDArray[np.datetime64]:
    data = np.fromiter(
        (_NAT if v is None else v for v in values), dtype=np.int64, count=len(values)
    )
    return data.view("datetime64[us]")


def _object_column(values: Sequence[object]) -> npt.NDArray[np.object_]:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


_NUMPY_TYPES = {"DOUBLE": np.float64, "FLOAT": np.float64, "BIGINT": np.int64,
                "INTEGER": np.int64, "BOOLEAN": np.bool_}  # fmt: skip


def _typed_column(
    duck_type: str, n: int, rows: npt.NDArray[np.intp], values: tuple[object, ...]
) -> npt.NDArray[np.generic]:
    """One typed column of ``n`` cells: ``values`` at ``rows``, NULL elsewhere."""
    if duck_type == "TIMESTAMP":
        cells: list[object] = [None] * n
        for r, v in zip(rows.tolist(), values, strict=True):
            cells[r] = v  # microseconds (the schema's converters)
        return _micros_column(cells)  # type: ignore[arg-type]  # ints and None
    kind = _NUMPY_TYPES.get(duck_type)
    if kind is not None and rows.size == n and None not in values:
        return np.asarray(values, dtype=kind)  # no NULL: a plain numpy column
    column = np.full(n, None, dtype=object)
    column[rows] = np.asarray(values, dtype=object) if values else values
    return column


def typed_columns(
    rows: Sequence[ArchiveRow], layouts: Mapping[str, EventLayout]
) -> tuple[list[tuple[str, str]], dict[str, npt.NDArray[np.generic]]]:
    """``fields_typed`` and the typed columns of the events in ``rows`` (names and types).

    A row gets its event's typed values when it was decoded with its record and every value
    fits its column; otherwise its typed columns are NULL and ``fields_typed`` is NULL.
    """
    found: dict[str, tuple[EventLayout, list[int], list[tuple[object, ...]]]] = {}
    marker = np.full(len(rows), None, dtype=object)
    for k, row in enumerate(rows):
        layout = None if row.event_name is None else layouts.get(row.event_name)
        if layout is None or row.record is None:
            continue
        typed = layout.values(row.record)
        if typed is None:
            continue
        entry = found.setdefault(layout.event, (layout, [], []))
        entry[1].append(k)
        entry[2].append(typed)
        marker[k] = True
    kinds: list[tuple[str, str]] = [(TYPED_MARKER, "BOOLEAN")]
    columns: dict[str, npt.NDArray[np.generic]] = {TYPED_MARKER: marker}
    for event in sorted(found):
        layout, at, tuples = found[event]
        index = np.asarray(at, dtype=np.intp)
        for field, values in zip(layout.fields, zip(*tuples, strict=True), strict=True):
            kinds.append((field.column, field.duck_type))
            columns[field.column] = _typed_column(field.duck_type, len(rows), index, values)
    return kinds, columns


def rows_to_columns(
    rows: Sequence[ArchiveRow], archived_at_us: int
) -> dict[str, npt.NDArray[np.generic]]:
    """Column arrays (numpy) for ``rows``, in :data:`ARCHIVE_COLUMNS` order."""
    raws = [row.raw for row in rows]
    return {
        "topic": _object_column([r.topic for r in raws]),
        "partition": np.fromiter((r.partition for r in raws), dtype=np.int32, count=len(raws)),
        "offset": np.fromiter((r.offset for r in raws), dtype=np.int64, count=len(raws)),
        "kafka_timestamp": _micros_column([r.timestamp_ms * 1000 for r in raws]),
        "timestamp_type": np.fromiter(
            (r.timestamp_type for r in raws), dtype=np.int16, count=len(raws)
        ),
        "key": _object_column([r.key for r in raws]),
        "value": _object_column([r.value for r in raws]),
        "headers": _object_column([headers_json(r.headers) for r in raws]),
        "event_name": _object_column([row.event_name for row in rows]),
        "payload": _object_column([row.payload_json for row in rows]),
        "event_time": _micros_column([row.event_time_us for row in rows]),
        "ingest_time": _micros_column([row.ingest_time_us for row in rows]),
        "decode_error": _object_column([row.error_type for row in rows]),
        "decode_reason": _object_column([row.error_reason for row in rows]),
        "archived_at": _micros_column([archived_at_us] * len(rows)),
    }


def _select_typed(kinds: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in kinds)


def write_part(
    con: duckdb.DuckDBPyConnection,
    final: Path,
    rows: Sequence[ArchiveRow],
    archived_at_us: int,
    layouts: Mapping[str, EventLayout] | None = None,
) -> Path:
    """Write ``rows`` as the Parquet file ``final``: temp name, fsync, atomic rename.

    Columns: :data:`ARCHIVE_COLUMNS`, then ``fields_typed`` and the typed columns of the
    events in ``rows`` (``layouts``, default: the project's contract).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    kinds, extra = typed_columns(rows, default_layouts() if layouts is None else layouts)
    columns = rows_to_columns(rows, archived_at_us) | extra
    con.register("_archive_batch", columns)
    try:
        target = str(tmp).replace("'", "''")
        select = _select_typed([*ARCHIVE_COLUMNS, *kinds])
        con.execute(
            f'COPY (SELECT {select} FROM _archive_batch ORDER BY "offset") '  # noqa: S608  # columns from the schema, escaped path
            f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        )
    finally:
        con.unregister("_archive_batch")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(final)
    _fsync_dir(final.parent)
    return final


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hour_runs(rows: Sequence[ArchiveRow]) -> list[tuple[str, list[ArchiveRow]]]:
    """Split one partition's rows (offset order) into maximal runs of the same hour.

    Runs, not groups: with out-of-order producer timestamps an hour can recur, and two
    files of one partition must never have overlapping offset ranges, or a crash between
    their renames could hide a gap behind the larger "last offset" of the other file.
    """
    runs: list[tuple[str, list[ArchiveRow]]] = []
    for row in rows:
        hour = hour_bucket(row.raw.timestamp_ms)
        if runs and runs[-1][0] == hour:
            runs[-1][1].append(row)
        else:
            runs.append((hour, [row]))
    return runs


class ArchiveWriter:
    """Buffers archive rows and flushes them as immutable part files.

    Rows of one topic-partition must arrive in increasing offset order, continuing from
    ``positions`` (the next offset per topic-partition, as recovered from the archive);
    the writer refuses anything that would archive an offset twice.
    """

    def __init__(self, root: Path, positions: dict[TopicPartition, int] | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.removed_temp_files = remove_temp_files(root)
        self._next: dict[TopicPartition, int] = dict(positions or {})
        self._buffer: dict[TopicPartition, list[ArchiveRow]] = defaultdict(list)
        self._buffered = 0
        self._con = duckdb.connect()

    @property
    def buffered(self) -> int:
        """Rows waiting for the next flush."""
        return self._buffered

    def next_offset(self, tp: TopicPartition) -> int | None:
        """The next offset expected for ``tp`` (None: nothing seen yet)."""
        return self._next.get(tp)

    def append(self, rows: Iterable[ArchiveRow]) -> None:
        for row in rows:
            raw = row.raw
            tp = TopicPartition(check_topic(raw.topic), raw.partition)
            expected = self._next.get(tp)
            if expected is not None and raw.offset < expected:
                raise ArchiveWriteError(
                    f"{tp.topic}[{tp.partition}] offset {raw.offset} is already archived "
                    f"(next expected {expected})"
                )
            self._next[tp] = raw.offset + 1
            self._buffer[tp].append(row)
            self._buffered += 1

    def flush(self) -> list[Path]:
        """Write every buffered row; returns the part files written (offset order per partition)."""
        written: list[Path] = []
        archived_at_us = time.time_ns() // 1000
        for tp in sorted(self._buffer):
            rows = self._buffer[tp]
            for hour, run in hour_runs(rows):
                final = part_path(
                    self.root,
                    tp.topic,
                    hour,
                    partition=tp.partition,
                    first_offset=run[0].raw.offset,
                    last_offset=run[-1].raw.offset,
                )
                written.append(write_part(self._con, final, run, archived_at_us))
            del self._buffer[tp]
            self._buffered -= len(rows)
        return written

    def close(self) -> None:
        self._con.close()
