"""Part files: contents byte-exact, split by hour, append-only, resumable (no Kafka)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.archive.archiver import codec_decoder
from analytics.archive.layout import (
    TopicPartition,
    iter_parts,
    part_path,
    recover_positions,
    temp_path,
)
from analytics.archive.rows import ArchiveRow, RawRecord, decode_row
from analytics.archive.schema import TYPED_MARKER, default_layouts
from analytics.archive.writer import ARCHIVE_COLUMNS, ArchiveWriteError, ArchiveWriter, hour_runs
from analytics.testing.synthetic import SyntheticLog, synthetic_records

HOUR_MS = 3_600_000


def _rows(log: SyntheticLog) -> list[ArchiveRow]:
    decoder, errors = codec_decoder()
    return [decode_row(r, decoder, errors) for r in synthetic_records(log)]


def _stored(root: Path) -> list[tuple[str, int, int, int, bytes | None, bytes | None]]:
    pattern = str(root / "topic=*" / "hour=*" / "part-*.parquet")
    return _query(
        'SELECT topic, "partition", "offset", epoch_ms(kafka_timestamp), key, value '
        "FROM read_parquet(?, hive_partitioning = false) "
        'ORDER BY topic, "partition", "offset"',
        pattern,
    )


def _query(sql: str, path: str) -> list[Any]:
    with duckdb.connect() as con:
        return con.execute(sql, [path]).fetchall()


def test_flush_writes_every_row_byte_exact_split_by_hour(tmp_path: Path) -> None:
    # 3 sites x 2 h at one sample per 10 min: crosses hour boundaries.
    log = SyntheticLog(sites=3, samples=12, period_ms=600_000, start_ms=1_790_000_000_000)
    rows = _rows(log)
    writer = ArchiveWriter(tmp_path)
    writer.append(rows)
    written = writer.flush()
    writer.close()
    assert writer.buffered == 0
    assert {p.parent.name for p in written} == {
        "hour=2026-09-21T14",
        "hour=2026-09-21T15",
        "hour=2026-09-21T16",
    }
    expected = sorted(
        (r.raw.topic, r.raw.partition, r.raw.offset, r.raw.timestamp_ms, r.raw.key, r.raw.value)
        for r in rows
    )
    assert _stored(tmp_path) == expected
    for part in iter_parts(tmp_path):  # every row sits in the file of its own hour and range
        (inside,) = _query(
            'SELECT min("offset"), max("offset"), min(kafka_timestamp), max(kafka_timestamp) '
            "FROM read_parquet(?, hive_partitioning = false)",
            str(part.path),
        )
        assert (inside[0], inside[1]) == (part.first_offset, part.last_offset)
        assert inside[2].strftime("%Y-%m-%dT%H") == part.hour == inside[3].strftime("%Y-%m-%dT%H")


def test_part_files_have_the_archive_schema(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path)
    writer.append(_rows(SyntheticLog(sites=1, samples=2)))
    (path,) = writer.flush()
    schema = _query("DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)", str(path))
    layout = default_layouts()["SiteTelemetry"]
    typed = [(f.column, f.duck_type) for f in layout.fields]
    assert [(name, kind) for name, kind, *_ in schema] == [
        *ARCHIVE_COLUMNS,
        (TYPED_MARKER, "BOOLEAN"),
        *typed,
    ]
    assert ("site_telemetry__battery_power_kw", "DOUBLE") in typed
    assert ("site_telemetry__frequency_hz", "DOUBLE") in typed
    assert ("site_telemetry__mode", "VARCHAR") in typed
    assert not any(f.field in ("event_time", "ingest_time") for f in layout.fields)


def test_appending_continues_in_new_files_and_recovers_positions(tmp_path: Path) -> None:
    rows = _rows(SyntheticLog(sites=4, samples=20))
    half = len(rows) // 2
    first = ArchiveWriter(tmp_path)
    first.append(rows[:half])
    first.flush()
    first.close()
    positions = recover_positions(tmp_path)
    second = ArchiveWriter(tmp_path, positions)
    second.append(rows[half:])
    second.flush()
    second.close()
    stored = _stored(tmp_path)
    assert len(stored) == len(rows) == len({(t, p, o) for t, p, o, *_ in stored})
    last = {}
    for row in rows:
        last[TopicPartition(row.raw.topic, row.raw.partition)] = row.raw.offset + 1
    assert recover_positions(tmp_path) == last


def test_an_offset_already_archived_is_refused(tmp_path: Path) -> None:
    rows = _rows(SyntheticLog(sites=1, samples=3))
    writer = ArchiveWriter(tmp_path)
    writer.append(rows)
    writer.flush()
    again = ArchiveWriter(tmp_path, recover_positions(tmp_path))
    with pytest.raises(ArchiveWriteError, match="already archived"):
        again.append(rows[-1:])
    writer.close()
    again.close()


def test_a_new_writer_removes_the_leftover_of_a_crashed_flush(tmp_path: Path) -> None:
    final = part_path(tmp_path, "t", "2026-01-01T00", partition=0, first_offset=0, last_offset=9)
    final.parent.mkdir(parents=True)
    temp_path(final).write_bytes(b"PAR1 torn")
    writer = ArchiveWriter(tmp_path)
    assert writer.removed_temp_files == [temp_path(final)]
    assert recover_positions(tmp_path) == {}
    writer.close()


def _row(offset: int, timestamp_ms: int) -> ArchiveRow:
    raw = RawRecord("t", 0, offset, timestamp_ms, None, b"v")
    return ArchiveRow(raw, None, None, None, None, "BadMagicError", "test row")


@settings(max_examples=200)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=40))
def test_hour_runs_never_overlap_even_with_timestamps_going_back(hours: list[int]) -> None:
    rows = [_row(offset, hour * HOUR_MS + 1) for offset, hour in enumerate(hours)]
    runs = hour_runs(rows)
    flat = [row for _hour, run in runs for row in run]
    assert flat == rows  # every row once, in offset order
    for hour, run in runs:
        assert {r.raw.timestamp_ms // HOUR_MS for r in run} == {int(hour[-2:])}
    for (_h1, a), (_h2, b) in itertools.pairwise(runs):
        assert a[-1].raw.offset < b[0].raw.offset


_LOG_ROWS = _rows(SyntheticLog(sites=5, samples=12, partitions=3))


@settings(max_examples=10, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 25), st.booleans()),  # (rows read, flushed or crashed after)
        min_size=1,
        max_size=12,
    )
)
def test_crash_anywhere_then_resume_archives_every_offset_once(
    steps: list[tuple[int, bool]],
) -> None:
    """The archiver's loop without Kafka: read some rows, flush or crash (buffer lost), restart
    from the positions recovered from the files, and so on; then drain. Exactly-once holds."""
    by_tp: dict[TopicPartition, list[ArchiveRow]] = {}
    for row in _LOG_ROWS:
        by_tp.setdefault(TopicPartition(row.raw.topic, row.raw.partition), []).append(row)

    def unread(positions: dict[TopicPartition, int]) -> list[ArchiveRow]:
        return [
            row
            for tp, rows in sorted(by_tp.items())
            for row in rows
            if row.raw.offset >= positions.get(tp, 0)
        ]

    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        writer = ArchiveWriter(root)
        for count, flushed in steps:
            pending = unread({**recover_positions(root), **_next_positions(writer, by_tp)})
            writer.append(pending[:count])
            if flushed:
                writer.flush()
            else:  # crash: the buffer is lost, a new writer resumes from the files
                writer.close()
                writer = ArchiveWriter(root, recover_positions(root))
        writer.append(unread(recover_positions(root) | _next_positions(writer, by_tp)))
        writer.flush()
        writer.close()
        stored = _stored(root)
    assert [(p, o) for _t, p, o, *_ in stored] == sorted(
        (r.raw.partition, r.raw.offset) for r in _LOG_ROWS
    )


def _next_positions(
    writer: ArchiveWriter, by_tp: dict[TopicPartition, list[ArchiveRow]]
) -> dict[TopicPartition, int]:
    """Where the consumer of ``writer`` stands (what it has read, flushed or not)."""
    found = {}
    for tp in by_tp:
        offset = writer.next_offset(tp)
        if offset is not None:
            found[tp] = offset
    return found
