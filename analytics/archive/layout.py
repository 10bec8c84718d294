"""Where archived events live on disk, and how far the archive has got (pure: no Kafka).

Layout (Hive-style directories, one Parquet file per flushed slice)::

    <archive>/topic=<topic>/hour=<YYYY-MM-DDTHH>/part-<partition>-<first>-<last>.parquet

``hour`` is the UTC hour of the Kafka record timestamp (present on every record, decodable
or not). ``first``/``last`` are the first and last Kafka offsets inside the file (zero
padded, so a lexical sort is the offset order). A file is written under a hidden temporary
name (``.part-...parquet.tmp``) and renamed into place only when complete, so a reader or
a restart never sees half a file; the offsets in the names of complete files are therefore
exactly what is durably archived, and :func:`recover_positions` turns them into the next
offset to read per topic-partition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PART_SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"
_OFFSET_WIDTH = 20
_PARTITION_WIDTH = 4
_PART_RE = re.compile(r"^part-(\d+)-(\d+)-(\d+)\.parquet$")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOUR_FORMAT = "%Y-%m-%dT%H"


class ArchiveLayoutError(ValueError):
    """A topic name, offset range or file name that cannot belong to the archive."""


@dataclass(frozen=True, order=True)
class TopicPartition:
    """One Kafka topic-partition."""

    topic: str
    partition: int


@dataclass(frozen=True)
class PartFile:
    """A complete part file found in the archive."""

    path: Path
    topic: str
    hour: str
    partition: int
    first_offset: int
    last_offset: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is a legal Kafka topic name (also safe as a directory name)."""
    if not _TOPIC_RE.fullmatch(topic) or topic in {".", ".."}:
        raise ArchiveLayoutError(f"not a valid Kafka topic name: {topic!r}")
    return topic


def hour_bucket(timestamp_ms: int) -> str:
    """The UTC hour (``YYYY-MM-DDTHH``) a Kafka timestamp in milliseconds falls into."""
    if timestamp_ms < 0:
        raise ArchiveLayoutError(f"negative Kafka timestamp: {timestamp_ms}")
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime(_HOUR_FORMAT)


def part_name(partition: int, first_offset: int, last_offset: int) -> str:
    """File name of a part holding offsets ``first_offset..last_offset`` of one partition."""
    if partition < 0 or first_offset < 0 or last_offset < first_offset:
        raise ArchiveLayoutError(
            f"bad part range: partition {partition}, offsets {first_offset}..{last_offset}"
        )
    return (
        f"part-{partition:0{_PARTITION_WIDTH}d}-{first_offset:0{_OFFSET_WIDTH}d}"
        f"-{last_offset:0{_OFFSET_WIDTH}d}{PART_SUFFIX}"
    )


def part_path(
    root: Path, topic: str, hour: str, *, partition: int, first_offset: int, last_offset: int
) -> Path:
    """Final path of a part file under the archive ``root``."""
    check_topic(topic)
    return (
        root / f"topic={topic}" / f"hour={hour}" / part_name(partition, first_offset, last_offset)
    )


def temp_path(final: Path) -> Path:
    """The hidden name a part is written under before its atomic rename to ``final``."""
    return final.with_name(f".{final.name}{TMP_SUFFIX}")


def parse_part(path: Path) -> PartFile:
    """Read topic, hour, partition and offsets back from a part file's path."""
    match = _PART_RE.fullmatch(path.name)
    hour_dir, topic_dir = path.parent.name, path.parent.parent.name
    if match is None or not hour_dir.startswith("hour=") or not topic_dir.startswith("topic="):
        raise ArchiveLayoutError(f"not an archive part file: {path}")
    partition, first, last = (int(g) for g in match.groups())
    if last < first:
        raise ArchiveLayoutError(f"part file with last offset before first: {path}")
    return PartFile(
        path=path,
        topic=check_topic(topic_dir.removeprefix("topic=")),
        hour=hour_dir.removeprefix("hour="),
        partition=partition,
        first_offset=first,
        last_offset=last,
    )


def iter_parts(root: Path, topics: Iterable[str] | None = None) -> Iterator[PartFile]:
    """Every complete part file under ``root`` (optionally only these topics), sorted."""
    wanted = None if topics is None else {check_topic(t) for t in topics}
    if not root.is_dir():
        return
    dirs = ["*"] if wanted is None else sorted(wanted)  # only the wanted topics' directories
    paths = [p for d in dirs for p in root.glob(f"topic={d}/hour=*/part-*{PART_SUFFIX}")]
    for path in sorted(paths):
        part = parse_part(path)
        if wanted is None or part.topic in wanted:
            yield part


def recover_positions(root: Path) -> dict[TopicPartition, int]:
    """Next offset to archive per topic-partition: one past the last offset durably written.

    Topic-partitions absent from the result have nothing archived yet.
    """
    last: dict[TopicPartition, int] = {}
    for part in iter_parts(root):
        tp = part.topic_partition
        last[tp] = max(last.get(tp, -1), part.last_offset)
    return {tp: offset + 1 for tp, offset in last.items()}


def remove_temp_files(root: Path) -> list[Path]:
    """Delete leftovers of an interrupted flush (never renamed, so never counted)."""
    removed = []
    if root.is_dir():
        for path in sorted(root.glob(f"topic=*/hour=*/.part-*{PART_SUFFIX}{TMP_SUFFIX}")):
            path.unlink()
            removed.append(path)
    return removed


def topics_in(root: Path) -> list[str]:
    """Topics that have at least one complete part file."""
    return sorted({part.topic for part in iter_parts(root)})
