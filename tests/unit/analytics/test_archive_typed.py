"""Typed columns in the archive: same values as the JSON payload, older files still readable."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.archive.archiver import codec_decoder
from analytics.archive.compact import compact
from analytics.archive.layout import iter_parts
from analytics.archive.rows import ArchiveRow, RawRecord, decode_row
from analytics.archive.schema import (
    SCHEMAS_DIR,
    TYPED_MARKER,
    EventSchema,
    default_layouts,
    event_layout,
    load_event_schemas,
    scalar_kind,
)
from analytics.archive.writer import ARCHIVE_COLUMNS, ArchiveWriter, typed_columns
from analytics.db import connect, event_view_sql, scoped_event_views
from analytics.testing.synthetic import SyntheticLog, synthetic_records
from contract.codec import default_codec
from contract.testing.strategies import records

LOG = SyntheticLog(sites=4, samples=30, late_every=4, partitions=2)
SCHEMAS = {s.name: s for s in load_event_schemas()}
TELEMETRY = SCHEMAS["SiteTelemetry"]
FIELDS = [name for name, _ in TELEMETRY.fields if name not in ("event_time", "ingest_time")]


def _write(root: Path, log: SyntheticLog) -> list[Path]:
    decoder, errors = codec_decoder()
    writer = ArchiveWriter(root)
    writer.append(decode_row(r, decoder, errors) for r in synthetic_records(log))
    paths = writer.flush()
    writer.close()
    return paths


def _strip_typed(path: Path) -> None:
    """Rewrite ``path`` as a file of the format before typed columns (base columns only)."""
    cols = ", ".join(f'"{name}"' for name, _ in ARCHIVE_COLUMNS)
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT {cols} FROM read_parquet(?)) TO '{path}.old' (FORMAT parquet)",  # noqa: S608  # test paths
            [str(path)],
        )
    Path(f"{path}.old").replace(path)


def _telemetry(con: duckdb.DuckDBPyConnection, view: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in ["offset", "partition", "event_time", "known_time", *FIELDS])
    return con.execute(f'SELECT {cols} FROM {view} ORDER BY "partition", "offset"').fetchall()  # noqa: S608  # schema names


def _json_view(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(event_view_sql(TELEMETRY, (), view="telemetry_from_json"))


def test_typed_columns_hold_what_the_payload_holds(tmp_path: Path) -> None:
    _write(tmp_path, LOG)
    con = connect(tmp_path)
    _json_view(con)
    typed = _telemetry(con, "site_telemetry")
    assert len(typed) == LOG.count
    assert typed == _telemetry(con, "telemetry_from_json")
    plan = con.execute("EXPLAIN SELECT sum(battery_power_kw) FROM site_telemetry").fetchall()
    assert "site_telemetry__battery_power_kw" in str(plan)


def test_archives_without_typed_columns_stay_readable(tmp_path: Path) -> None:
    first = _write(tmp_path, LOG)
    for path in first:
        _strip_typed(path)
    con = connect(tmp_path)
    assert TYPED_MARKER not in {r[0] for r in con.execute("DESCRIBE archive_rows").fetchall()}
    _json_view(con)
    assert _telemetry(con, "site_telemetry") == _telemetry(con, "telemetry_from_json")
    assert len(_telemetry(con, "site_telemetry")) == LOG.count


def test_old_and_new_files_mixed_each_read_their_own_way(tmp_path: Path) -> None:
    old = _write(tmp_path, LOG)
    for path in old:
        _strip_typed(path)
    later = SyntheticLog(
        sites=LOG.sites, samples=10, partitions=2, start_ms=LOG.start_ms + 7_200_000, seed=2
    )
    decoder, errors = codec_decoder()
    rows = [decode_row(r, decoder, errors) for r in synthetic_records(later)]
    next_offset = {0: 0, 1: 0}
    for r in synthetic_records(LOG):
        next_offset[r.partition] = r.offset + 1
    shifted = [
        ArchiveRow(
            RawRecord(
                r.raw.topic,
                r.raw.partition,
                r.raw.offset + next_offset[r.raw.partition],
                r.raw.timestamp_ms,
                r.raw.key,
                r.raw.value,
            ),
            r.event_name,
            r.payload_json,
            r.event_time_us,
            r.ingest_time_us,
            r.error_type,
            r.error_reason,
            record=r.record,
        )
        for r in rows
    ]
    writer = ArchiveWriter(tmp_path)
    writer.append(shifted)
    new = writer.flush()
    writer.close()
    # make the new files' typed power differ from their payload: the view must read the
    # typed column there and the payload in the old files
    for path in new:
        with duckdb.connect() as c:
            c.execute(
                "COPY (SELECT * REPLACE (site_telemetry__battery_power_kw + 1000.0 AS "  # noqa: S608  # test path
                f"site_telemetry__battery_power_kw) FROM read_parquet(?)) TO '{path}.x' "
                "(FORMAT parquet)",
                [str(path)],
            )
        Path(f"{path}.x").replace(path)
    con = connect(tmp_path)
    _json_view(con)
    got = dict(
        con.execute(
            "SELECT event_time, sum(battery_power_kw) FROM site_telemetry GROUP BY 1"
        ).fetchall()
    )
    from_json = dict(
        con.execute(
            "SELECT event_time, sum(battery_power_kw) FROM telemetry_from_json GROUP BY 1"
        ).fetchall()
    )
    assert got.keys() == from_json.keys()
    later_start = datetime.fromtimestamp(later.start_ms / 1000, UTC).replace(tzinfo=None)
    for t, kw in got.items():
        offset = 1000.0 * LOG.sites if t >= later_start else 0.0
        assert kw == pytest.approx(from_json[t] + offset)


def test_compaction_keeps_typed_columns_and_merges_old_with_new(tmp_path: Path) -> None:
    parts = _write(tmp_path, SyntheticLog(sites=2, samples=10, partitions=1))
    _strip_typed(parts[0])
    more = SyntheticLog(sites=2, samples=10, partitions=1, start_ms=LOG.start_ms + 20_000)
    decoder, errors = codec_decoder()
    rows = [decode_row(r, decoder, errors) for r in synthetic_records(more)]
    writer = ArchiveWriter(tmp_path)
    writer.append(
        ArchiveRow(
            RawRecord(
                r.raw.topic, 0, r.raw.offset + 20, r.raw.timestamp_ms, r.raw.key, r.raw.value
            ),
            r.event_name,
            r.payload_json,
            r.event_time_us,
            r.ingest_time_us,
            None,
            None,
            record=r.record,
        )
        for r in rows
    )
    writer.flush()
    writer.close()
    con = connect(tmp_path)
    _json_view(con)
    before = _telemetry(con, "telemetry_from_json")
    report = compact(tmp_path)
    assert report.files_after == 1
    (part,) = list(iter_parts(tmp_path))
    with duckdb.connect() as c:
        marks = c.execute(
            f"SELECT count({TYPED_MARKER}), count(*) FROM read_parquet(?)",  # noqa: S608  # constant
            [str(part.path)],
        ).fetchone()
    assert marks == (20, 40)  # the new file's rows typed, the old file's not
    con = connect(tmp_path)
    _json_view(con)
    assert _telemetry(con, "site_telemetry") == before == _telemetry(con, "telemetry_from_json")


def test_a_value_that_does_not_fit_leaves_the_row_to_the_payload() -> None:
    raw = RawRecord("site.telemetry", 0, 0, 1_790_000_000_000, b"k", b"v")
    good = {"site_id": "s", "battery_power_kw": 1.5, "faulted": False}
    bad = {"site_id": "s", "battery_power_kw": "1.5", "faulted": False}
    rows = [
        ArchiveRow(raw, "SiteTelemetry", "{}", 0, None, None, None, record=good),
        ArchiveRow(raw, "SiteTelemetry", "{}", 0, None, None, None, record=bad),
        ArchiveRow(raw, "SiteTelemetry", "{}", 0, None, None, None),  # record unknown
        ArchiveRow(raw, None, None, None, None, "BadMagicError", "x"),
        ArchiveRow(raw, "NoSuchEvent", "{}", 0, None, None, None, record=good),
    ]
    kinds, columns = typed_columns(rows, default_layouts())
    assert kinds[0] == (TYPED_MARKER, "BOOLEAN")
    assert list(columns[TYPED_MARKER]) == [True, None, None, None, None]
    assert list(columns["site_telemetry__battery_power_kw"]) == [1.5, None, None, None, None]
    assert list(columns["site_telemetry__faulted"]) == [False, None, None, None, None]


@pytest.mark.parametrize(
    ("avro_type", "duck_type"),
    [
        ("string", "VARCHAR"),
        ({"type": "string", "logicalType": "uuid"}, "VARCHAR"),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, "VARCHAR"),
        ("int", "INTEGER"),
        ("long", "BIGINT"),
        ("float", "FLOAT"),
        (["null", "double"], "DOUBLE"),
        ("boolean", "BOOLEAN"),
        ({"type": "long", "logicalType": "timestamp-micros"}, "TIMESTAMP"),
        (["null", {"type": "long", "logicalType": "timestamp-millis"}], "TIMESTAMP"),
        ({"type": "int", "logicalType": "date"}, "DATE"),
        ({"type": "int", "logicalType": "timestamp-micros"}, None),  # wrong base type
        ({"type": "bytes", "logicalType": "decimal", "precision": 4}, None),
        ({"type": "int", "logicalType": "time-millis"}, None),
        ("bytes", None),
        ({"type": "array", "items": "double"}, None),
        (["null", "int", "string"], None),
        ({"type": "record", "name": "R", "fields": []}, None),
    ],
)
def test_scalar_kinds(avro_type: object, duck_type: str | None) -> None:
    kind = scalar_kind(avro_type)
    assert (None if kind is None else kind[0]) == duck_type


@pytest.mark.parametrize(
    ("avro_type", "value", "stored"),
    [
        ("double", 3, 3.0),
        ("double", True, None),
        ("long", True, None),
        ("long", 2.0, None),
        ("string", uuid.UUID(int=1), str(uuid.UUID(int=1))),
        ("boolean", 1, None),
        ({"type": "long", "logicalType": "timestamp-micros"}, datetime(1970, 1, 1, 0, 0, 1), 10**6),
        ({"type": "int", "logicalType": "date"}, date(2026, 1, 2), date(2026, 1, 2)),
        ({"type": "int", "logicalType": "date"}, datetime(2026, 1, 2), None),
    ],
)
def test_values_are_checked_against_their_column(
    avro_type: object, value: object, stored: object
) -> None:
    layout = event_layout(EventSchema("E", "ns.E", (("f", avro_type),)))
    assert layout.values({"f": value}) == (None if stored is None else (stored,))


def test_scoped_views_read_one_topic_only(tmp_path: Path) -> None:
    _write(tmp_path, LOG)
    _write(tmp_path, SyntheticLog(sites=1, samples=5, topic="replay.site.telemetry"))
    con = connect(tmp_path)
    scoped_event_views(
        con,
        tmp_path,
        [("copy_telemetry", "SiteTelemetry", "replay.site.telemetry"),
         ("none_telemetry", "SiteTelemetry", "no.such.topic")],
    )  # fmt: skip
    assert con.execute("SELECT count(*), min(topic) FROM copy_telemetry").fetchone() == (
        5,
        "replay.site.telemetry",
    )
    assert con.execute("SELECT count(*) FROM none_telemetry").fetchone() == (0,)
    (sql,) = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = 'copy_telemetry__rows'"
    ).fetchone() or ("",)
    assert "topic=replay.site.telemetry/hour=*" in sql
    assert "topic=*" not in sql


EVENTS = ["SiteTelemetry", "MarketActivation", "SiteCommand", "CommandResult", "FleetState"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_typed_columns_round_trip_any_record(tmp_path_factory: Any, data: st.DataObject) -> None:
    event = data.draw(st.sampled_from(EVENTS))
    (path,) = SCHEMAS_DIR.glob(f"*/{event}.avsc")
    record = data.draw(records(json.loads(path.read_text(encoding="utf-8"))))
    codec = default_codec()
    decoder, errors = codec_decoder()
    value = codec.encode(event, record)
    row = decode_row(RawRecord("t", 0, 0, 1_790_000_000_000, None, value), decoder, errors)
    assert row.record is not None
    root = tmp_path_factory.mktemp("typed")
    writer = ArchiveWriter(root)
    writer.append([row])
    writer.flush()
    writer.close()
    layout = default_layouts()[event]
    cols = ", ".join(f'"{f.column}"' for f in layout.fields)
    with duckdb.connect() as con:
        got = con.execute(
            f"SELECT {TYPED_MARKER}, {cols} FROM read_parquet(?)",  # noqa: S608  # schema names
            [str(root / "topic=t" / "*" / "*.parquet")],
        ).fetchone()
    assert got is not None
    assert got[0] is True
    for f, stored in zip(layout.fields, got[1:], strict=True):
        expected = row.record.get(f.field)
        if isinstance(expected, datetime):
            expected = expected.astimezone(UTC).replace(tzinfo=None)
        elif isinstance(expected, uuid.UUID):
            expected = str(expected)
        assert stored == expected, f.field
