"""Replay sources from the archive and diff side specs (DuckDB, no Kafka)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.archive.archiver import codec_decoder
from analytics.archive.rows import RawRecord, decode_row
from analytics.archive.writer import ArchiveWriter
from analytics.replay.diff_sources import DiffSide, parse_side, read_archive_side
from analytics.replay.plan import ReplayPlanError, TimeWindow, merge_streams
from analytics.replay.sources import archive_streams, drop_repeated_events, event_id_of_value
from analytics.testing.synthetic import SyntheticLog, synthetic_records
from contract.codec import decode_raw
from flowerhub.cli import main as flowerhub
from flowerhub.cli.analytics import register

HOUR_MS = 3_600_000
LOG = SyntheticLog(sites=6, samples=8, period_ms=HOUR_MS // 4, partitions=3, headers_every=5)


def _archive(root: Path, log: SyntheticLog = LOG) -> list[RawRecord]:
    decoder, errors = codec_decoder()
    records = list(synthetic_records(log))
    writer = ArchiveWriter(root)
    writer.append(decode_row(r, decoder, errors) for r in records)
    writer.flush()
    writer.close()
    return records


def test_archive_streams_give_each_partition_in_offset_order(tmp_path: Path) -> None:
    records = _archive(tmp_path)
    with duckdb.connect() as con:
        source = archive_streams(con, tmp_path)
        streams = [list(s) for s in source.streams]
    assert source.partitions == {LOG.topic: 3}
    for stream in streams:
        assert [r.offset for r in stream] == sorted(r.offset for r in stream)
    got = sorted((r for s in streams for r in s), key=lambda r: (r.partition, r.offset))
    assert got == sorted(records, key=lambda r: (r.partition, r.offset))  # headers included
    assert any(r.headers for r in got)


@pytest.mark.parametrize(("first", "last"), [(0, 7), (2, 5), (3, 3)])
def test_a_window_selects_by_kafka_timestamp_across_hour_files(
    tmp_path: Path, first: int, last: int
) -> None:
    records = _archive(tmp_path)
    step = LOG.period_ms
    window = TimeWindow(
        LOG.start_ms + first * step + LOG.kafka_delay_ms,
        LOG.start_ms + last * step + LOG.kafka_delay_ms,
    )
    with duckdb.connect() as con:
        got = [
            s.record for s in merge_streams(archive_streams(con, tmp_path, None, window).streams)
        ]
    expected = [r for r in records if window.contains(r.timestamp_ms)]
    assert sorted(got, key=lambda r: (r.partition, r.offset)) == sorted(
        expected, key=lambda r: (r.partition, r.offset)
    )
    assert len(got) == LOG.sites * (last - first + 1)


def test_a_missing_archive_is_a_typed_error(tmp_path: Path) -> None:
    with duckdb.connect() as con, pytest.raises(ReplayPlanError, match="not found"):
        archive_streams(con, tmp_path / "none")


@pytest.mark.parametrize(
    ("spec", "side"),
    [
        ("kafka:", DiffSide("")),
        ("kafka:replay-1.", DiffSide("replay-1.")),
        ("archive:/data/a", DiffSide("", Path("/data/a"))),
        ("archive:/data/a:replay-1.", DiffSide("replay-1.", Path("/data/a"))),
        ("replay-2.", DiffSide("replay-2.")),
    ],
)
def test_parse_side(spec: str, side: DiffSide) -> None:
    assert parse_side(spec) == side


def test_a_bare_directory_is_an_archive(tmp_path: Path) -> None:
    assert parse_side(str(tmp_path)) == DiffSide("", tmp_path)


@pytest.mark.parametrize("spec", ["", "archive:"])
def test_bad_sides_are_refused(spec: str) -> None:
    with pytest.raises(ReplayPlanError):
        parse_side(spec)


def test_archive_side_strips_the_prefix(tmp_path: Path) -> None:
    log = SyntheticLog(sites=2, samples=3, topic="copy-1.site.telemetry")
    _archive(tmp_path, log)
    events = read_archive_side(DiffSide("copy-1.", tmp_path), ["site.telemetry"])
    assert len(events) == 6
    assert {e.topic for e in events} == {"site.telemetry"}
    assert all(
        e.record is not None and e.record["site_id"] == e.key.decode() for e in events if e.key
    )


def test_diff_of_an_archive_with_itself_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _archive(tmp_path)
    assert (
        flowerhub(["replay", "diff", "--left", str(tmp_path), "--right", f"archive:{tmp_path}"])
        == 0
    )
    assert "identical" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay", "--prefix", "p."], "needs a source"),
        (["replay", "--log", "/nonexistent", "--max"], "needs --prefix"),
        (["replay", "--log", "/nonexistent", "--prefix", "p.", "--speed", "0"], "speed"),
        (["replay", "--log", "/nonexistent", "--prefix", "p.", "--from", "noon"], "ISO 8601"),
        (["replay", "--log", "/nonexistent", "--prefix", "p."], "not found"),
        (["archive", "--out", "/tmp/x", "--topics", "bad topic"], "topic"),
    ],
)
def test_cli_errors_are_clear(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert flowerhub(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_groups_register() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["replay", "--log", "d", "--prefix", "p.", "--speed", "2"])
    assert (args.log, args.prefix, args.speed) == (Path("d"), "p.", 2.0)
    args = parser.parse_args(["replay", "diff", "--left", "a", "--right", "b"])
    assert (args.left, args.right) == ("a", "b")


def _raw(topic: str, offset: int, value: bytes | None) -> RawRecord:
    return RawRecord(topic, 0, offset, 1_000 + offset, b"k", value)


@pytest.mark.parametrize(
    ("streams", "kept", "dropped"),
    [
        ([[("t", b"a"), ("t", b"b")]], [[0, 1]], 0),
        ([[("t", b"a"), ("t", b"a")]], [[0]], 1),  # a retry's copy in the same partition
        ([[("t", b"a")], [("t", b"a")]], [[0], []], 1),  # ... or in another partition
        ([[("t", b"a")], [("u", b"a")]], [[0], [0]], 0),  # per topic: another topic's id
        ([[("t", b"?"), ("t", b"?")]], [[0, 1]], 0),  # no id (undecodable): always kept
        ([[("t", None), ("t", None)]], [[0, 1]], 0),  # a tombstone: kept
    ],
)
def test_repeated_event_ids_are_left_out_per_topic(
    streams: list[list[tuple[str, bytes | None]]], kept: list[list[int]], dropped: int
) -> None:
    raw = [[_raw(t, i, v) for i, (t, v) in enumerate(s)] for s in streams]
    ids = {b"a": "id-a", b"b": "id-b"}
    out, count = drop_repeated_events(raw, ids.get)
    assert [[r.offset for r in s] for s in out] == kept
    assert count == dropped


@given(st.lists(st.sampled_from(["x", "y", "z", None]), max_size=30))
def test_each_id_stays_once_and_in_its_first_place(ids: list[str | None]) -> None:
    raw = [[_raw("t", i, (v or "?").encode()) for i, v in enumerate(ids)]]
    out, dropped = drop_repeated_events(raw, lambda b: None if b == b"?" else b.decode())
    kept = [r.value for r in out[0]]
    named = [v for v in kept if v != b"?"]
    assert len(named) == len(set(named))
    assert dropped == len(ids) - len(kept)
    assert kept.count(b"?") == ids.count(None)


def test_an_event_id_is_read_from_the_encoded_event() -> None:
    record = next(iter(synthetic_records(LOG)))
    assert record.value is not None
    assert event_id_of_value(record.value) == str(decode_raw(record.value).record["event_id"])
    assert event_id_of_value(b"not an event") is None
