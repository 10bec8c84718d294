"""Archive layout: part names, parsing, hour buckets, resume positions (pure, no Kafka)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.archive.layout import (
    ArchiveLayoutError,
    TopicPartition,
    check_topic,
    hour_bucket,
    parse_part,
    part_name,
    part_path,
    recover_positions,
    remove_temp_files,
    temp_path,
    topics_in,
)


@pytest.mark.parametrize(
    ("timestamp_ms", "hour"),
    [
        (0, "1970-01-01T00"),
        (3_599_999, "1970-01-01T00"),
        (3_600_000, "1970-01-01T01"),
        (1_790_000_000_000, "2026-09-21T14"),
        (1_790_002_799_999, "2026-09-21T14"),
        (1_790_002_800_000, "2026-09-21T15"),
    ],
)
def test_hour_bucket_is_the_utc_hour(timestamp_ms: int, hour: str) -> None:
    assert hour_bucket(timestamp_ms) == hour


def test_negative_timestamp_is_refused() -> None:
    with pytest.raises(ArchiveLayoutError, match="negative"):
        hour_bucket(-1)


@pytest.mark.parametrize(
    ("partition", "first", "last", "name"),
    [
        (0, 0, 0, "part-0000-00000000000000000000-00000000000000000000.parquet"),
        (3, 17, 250, "part-0003-00000000000000000017-00000000000000000250.parquet"),
    ],
)
def test_part_name(partition: int, first: int, last: int, name: str) -> None:
    assert part_name(partition, first, last) == name


@pytest.mark.parametrize(("partition", "first", "last"), [(-1, 0, 0), (0, -1, 3), (0, 5, 4)])
def test_bad_part_ranges_are_refused(partition: int, first: int, last: int) -> None:
    with pytest.raises(ArchiveLayoutError, match="bad part range"):
        part_name(partition, first, last)


@pytest.mark.parametrize("topic", ["", "a b", "../x", "..", "t/x", "ü", "x" * 250])
def test_bad_topic_names_are_refused(topic: str) -> None:
    with pytest.raises(ArchiveLayoutError, match="topic"):
        check_topic(topic)


@given(
    topic=st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,40}", fullmatch=True),
    partition=st.integers(0, 9999),
    first=st.integers(0, 10**15),
    length=st.integers(0, 10**6),
    timestamp_ms=st.integers(0, 4_102_444_800_000),
)
def test_part_path_round_trips(
    topic: str, partition: int, first: int, length: int, timestamp_ms: int
) -> None:
    hour = hour_bucket(timestamp_ms)
    path = part_path(
        Path("/a"), topic, hour, partition=partition, first_offset=first, last_offset=first + length
    )
    part = parse_part(path)
    assert (part.topic, part.hour, part.partition) == (topic, hour, partition)
    assert (part.first_offset, part.last_offset) == (first, first + length)


@pytest.mark.parametrize(
    "path",
    [
        "/a/topic=t/hour=h/part-1-2.parquet",
        "/a/topic=t/hour=h/part-0001-00000000000000000009-00000000000000000002.parquet",
        "/a/t/hour=h/part-0001-00000000000000000001-00000000000000000002.parquet",
        "/a/topic=t/h/part-0001-00000000000000000001-00000000000000000002.parquet",
    ],
)
def test_foreign_files_are_not_parts(path: str) -> None:
    with pytest.raises(ArchiveLayoutError):
        parse_part(Path(path))


def _touch(root: Path, topic: str, hour: str, *, partition: int, first: int, last: int) -> Path:
    path = part_path(root, topic, hour, partition=partition, first_offset=first, last_offset=last)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_recover_positions_is_one_past_the_last_archived_offset(tmp_path: Path) -> None:
    _touch(tmp_path, "site.telemetry", "2026-01-01T00", partition=0, first=0, last=99)
    _touch(tmp_path, "site.telemetry", "2026-01-01T01", partition=0, first=100, last=149)
    _touch(tmp_path, "site.telemetry", "2026-01-01T00", partition=1, first=0, last=9)
    _touch(tmp_path, "fleet.state", "2026-01-01T01", partition=2, first=7, last=7)
    assert recover_positions(tmp_path) == {
        TopicPartition("site.telemetry", 0): 150,
        TopicPartition("site.telemetry", 1): 10,
        TopicPartition("fleet.state", 2): 8,
    }
    assert topics_in(tmp_path) == ["fleet.state", "site.telemetry"]


def test_temp_files_do_not_count_and_are_removed(tmp_path: Path) -> None:
    kept = _touch(tmp_path, "t", "2026-01-01T00", partition=0, first=0, last=4)
    final = part_path(tmp_path, "t", "2026-01-01T00", partition=0, first_offset=5, last_offset=9)
    temp = temp_path(final)
    temp.write_bytes(b"half a file")
    assert recover_positions(tmp_path) == {TopicPartition("t", 0): 5}
    assert remove_temp_files(tmp_path) == [temp]
    assert not temp.exists()
    assert kept.exists()


def test_an_empty_or_missing_archive_has_no_positions(tmp_path: Path) -> None:
    assert recover_positions(tmp_path) == {}
    assert recover_positions(tmp_path / "nothing") == {}
