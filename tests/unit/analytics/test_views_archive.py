"""DuckDB views over the archive: clocks kept apart, typed event views, errors kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics.archive.archiver import codec_decoder
from analytics.archive.rows import RawRecord, decode_row
from analytics.archive.writer import ARCHIVE_COLUMNS, ArchiveWriter
from analytics.db import (
    ArchiveViewError,
    connect,
    field_expression,
    load_event_schemas,
    snake_case,
)
from analytics.testing.synthetic import SyntheticLog, synthetic_records

LOG = SyntheticLog(sites=3, samples=20, late_every=5, late_ms=45_000, kafka_delay_ms=250)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).replace(tzinfo=None)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    decoder, errors = codec_decoder()
    writer = ArchiveWriter(tmp_path)
    records = list(synthetic_records(LOG))
    writer.append(decode_row(r, decoder, errors) for r in records)
    last = max(r.offset for r in records if r.partition == 0)
    bad = RawRecord(LOG.topic, 0, last + 1, LOG.start_ms, b"site-x", b"\x01\x02not avro")
    writer.append([decode_row(bad, decoder, errors)])
    writer.flush()
    writer.close()
    return tmp_path


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    return con.execute(sql).fetchall()


def test_event_time_ingest_time_and_kafka_timestamp_stay_apart(archive: Path) -> None:
    con = connect(archive)
    rows = _rows(
        con,
        "SELECT site_id, event_time, ingest_time, known_time, kafka_timestamp "
        "FROM site_telemetry ORDER BY site_id, event_time",
    )
    assert len(rows) == LOG.count
    late = 0
    for _site, event_time, ingest_time, known_time, kafka_timestamp in rows:
        sample = (event_time - _utc(LOG.start_ms)) // timedelta(milliseconds=LOG.period_ms)
        assert event_time == _utc(LOG.start_ms + sample * LOG.period_ms)
        if sample % 5 == 4:  # a late arrival: learned 45 s after it happened
            late += 1
            assert ingest_time == event_time + timedelta(milliseconds=LOG.late_ms)
            assert known_time == ingest_time
            assert kafka_timestamp == ingest_time + timedelta(milliseconds=250)
        else:
            assert ingest_time is None
            assert known_time == event_time
            assert kafka_timestamp == event_time + timedelta(milliseconds=250)
    assert late == LOG.count // 5
    (lateness,) = _rows(
        con,
        "SELECT events, with_ingest_time, max_ingest_delay, max_kafka_lag_s FROM event_lateness",
    )
    assert lateness == (LOG.count, LOG.count // 5, timedelta(seconds=45), 45.25)


def test_event_views_have_typed_columns_from_the_schema(archive: Path) -> None:
    con = connect(archive)
    types = dict(_rows(con, "SELECT column_name, column_type FROM (DESCRIBE site_telemetry)"))
    assert types["battery_power_kw"] == "DOUBLE"
    assert types["site_id"] == types["mode"] == "VARCHAR"
    assert types["faulted"] == "BOOLEAN"
    assert types["event_time"] == types["kafka_timestamp"] == "TIMESTAMP"
    ((site, power, soc, mode, armed),) = _rows(
        con,
        "SELECT site_id, battery_power_kw, soc_pct, mode, reserve_armed FROM site_telemetry "
        "ORDER BY event_time, site_id LIMIT 1",
    )
    assert site == "site-00000"
    assert isinstance(power, float)
    assert soc == 70.0
    assert (mode, armed) == ("REMOTE", "FCR_N")


def test_undecodable_records_are_visible_not_dropped(archive: Path) -> None:
    con = connect(archive)
    ((topic, key, value, error),) = _rows(
        con, "SELECT topic, key, value, decode_error FROM undecodable"
    )
    assert (topic, key, value, error) == (
        LOG.topic,
        b"site-x",
        b"\x01\x02not avro",
        "BadMagicError",
    )
    coverage = _rows(con, "SELECT sum(records), sum(undecodable) FROM archive_coverage")
    assert coverage == [(LOG.count + 1, 1)]


def test_files_written_after_connect_are_seen(archive: Path) -> None:
    con = connect(archive)
    before = _rows(con, "SELECT count(*) FROM archive_rows")[0][0]
    decoder, errors = codec_decoder()
    more = SyntheticLog(sites=1, samples=3, topic="fleet.state.test", start_ms=LOG.start_ms)
    writer = ArchiveWriter(archive)
    writer.append(decode_row(r, decoder, errors) for r in synthetic_records(more))
    writer.flush()
    writer.close()
    assert _rows(con, "SELECT count(*) FROM archive_rows")[0][0] == before + 3


def test_an_empty_archive_has_every_view_and_no_rows(tmp_path: Path) -> None:
    con = connect(tmp_path / "not-yet")
    assert _rows(con, "SELECT count(*) FROM events") == [(0,)]
    assert _rows(con, "SELECT count(*) FROM site_telemetry") == [(0,)]
    columns = _rows(con, "SELECT column_name, column_type FROM (DESCRIBE archive_rows)")
    assert columns == list(ARCHIVE_COLUMNS)


def test_every_contract_event_has_a_view(tmp_path: Path) -> None:
    con = connect(tmp_path)
    views = {
        name for (name,) in _rows(con, "SELECT view_name FROM duckdb_views() WHERE NOT internal")
    }
    expected = {s.view_name for s in load_event_schemas()}
    assert {"site_telemetry", "dead_letter", "fleet_state", "market_activation"} <= expected
    assert expected | {"events", "undecodable", "archive_coverage", "event_lateness"} <= views


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("SiteTelemetry", "site_telemetry"),
        ("FleetState", "fleet_state"),
        ("DeadLetter", "dead_letter"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


@pytest.mark.parametrize(
    ("avro_type", "sql"),
    [
        ("double", "CAST((payload->>'$.f') AS DOUBLE)"),
        (["null", "string"], "CAST((payload->>'$.f') AS VARCHAR)"),
        (
            {"type": "long", "logicalType": "timestamp-micros"},
            "make_timestamp(CAST((payload->>'$.f') AS BIGINT))",
        ),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, "CAST((payload->>'$.f') AS VARCHAR)"),
        ("bytes", "unhex((payload->>'$.f'))"),
        ({"type": "array", "items": "double"}, "(payload->'$.f')"),
        (["null", "int", "string"], "(payload->'$.f')"),
    ],
)
def test_field_expression(avro_type: object, sql: str) -> None:
    assert field_expression("f", avro_type) == sql


def test_field_names_are_checked() -> None:
    with pytest.raises(ArchiveViewError, match="field name"):
        field_expression("x'; DROP", "string")


def test_a_file_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ArchiveViewError, match="not a directory"):
        connect(path)


def test_topic_macros_filter_by_topic_and_event_time(archive: Path) -> None:
    con = connect(archive)
    count = con.execute("SELECT count(*) FROM topic_events(?)", [LOG.topic]).fetchall()
    assert count == [(LOG.count,)]
    assert _rows(con, "SELECT count(*) FROM topic_events('other')") == [(0,)]
    since, until = _utc(LOG.start_ms + 5 * LOG.period_ms), _utc(LOG.start_ms + 8 * LOG.period_ms)
    rows = con.execute(
        "SELECT min(event_time), max(event_time), count(*) FROM topic_window(?, ?, ?)",
        [LOG.topic, since, until],
    ).fetchall()
    assert rows == [(since, until - timedelta(milliseconds=LOG.period_ms), 3 * LOG.sites)]
