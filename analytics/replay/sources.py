"""Where a replay reads from: the archive (Parquet part files) or Kafka itself.

Both give one stream per topic-partition, in offset order, restricted to a Kafka-timestamp
window; :func:`analytics.replay.plan.merge_streams` turns them into the replay order.

The archive is read lazily, file by file (memory bounded by one flush). Kafka is read up to
the end offsets seen at the start and held in memory, so ``--kafka`` suits windows of up to
a few million records; longer slices are replayed from the archive. With ``--from`` the Kafka
read starts at the first offset whose timestamp is >= the start (``offsets_for_times``).
Either way each event id is replayed once per topic: the archive drops repeats when it
writes, the Kafka read here (:func:`drop_repeated_events`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiokafka  # type: ignore[import-untyped, unused-ignore]  # ships no py.typed
import duckdb

from analytics.archive.compact import live_parts
from analytics.archive.layout import PartFile, hour_bucket
from analytics.archive.rows import RawRecord, headers_from_json
from analytics.replay.plan import ReplayPlanError, TimeWindow
from contract.codec import raw_codec
from contract.errors import EventDecodeError
from contract.kafka import clients
from contract.kafka.admin import topic_partitions
from contract.kafka.records import raw_record
from contract.kafka.settings import KafkaSettings

_FETCH = 20_000


@dataclass(frozen=True)
class SourceStreams:
    """Per-topic-partition record streams and the partition numbers they use."""

    streams: Sequence[Iterable[RawRecord]]
    partitions: dict[str, int]  # topic -> number of partitions the copy needs at least
    duplicates: int = 0  # repeated event ids left out (Kafka: at-least-once delivery)


def drop_repeated_events(
    streams: Sequence[Sequence[RawRecord]], event_id: Callable[[bytes], str | None]
) -> tuple[list[list[RawRecord]], int]:
    """``streams`` without the records whose event id an earlier record of the same topic
    carried (a producer's retry after a lost acknowledgement lands the same event twice; the
    archive drops such copies when it writes, :mod:`analytics.archive.dedupe`, and a replay
    from Kafka does it here). ``event_id`` reads a value's id (None: undecodable, kept).
    Returns the streams and how many records were left out."""
    seen: dict[str, set[str]] = defaultdict(set)
    out: list[list[RawRecord]] = []
    dropped = 0
    for stream in streams:
        kept: list[RawRecord] = []
        for record in stream:
            found = None if record.value is None else event_id(record.value)
            if found is not None:
                ids = seen[record.topic]
                if found in ids:
                    dropped += 1
                    continue
                ids.add(found)
            kept.append(record)
        out.append(kept)
    return out, dropped


def event_id_of_value(value: bytes) -> str | None:
    """The ``event_id`` of an encoded event (None when it does not decode)."""
    try:
        record = raw_codec().decode(value).record
    except EventDecodeError:
        return None
    found = record.get("event_id")
    return None if found is None else str(found)


def _hour_in_window(hour: str, window: TimeWindow) -> bool:
    if window.start_ms is not None and hour < hour_bucket(window.start_ms):
        return False
    return window.end_ms is None or hour <= hour_bucket(window.end_ms)


def archive_files(
    root: Path, topics: Sequence[str] | None, window: TimeWindow
) -> dict[tuple[str, int], list[PartFile]]:
    """Part files per (topic, partition) that may hold records of ``window``."""
    if not root.is_dir():
        raise ReplayPlanError(f"archive directory not found: {root}")
    files: dict[tuple[str, int], list[PartFile]] = defaultdict(list)
    for part in live_parts(root, topics):
        if _hour_in_window(part.hour, window):
            files[(part.topic, part.partition)].append(part)
    return dict(files)


def _read_partition(
    con: duckdb.DuckDBPyConnection, parts: list[PartFile], window: TimeWindow
) -> Iterator[RawRecord]:
    """One partition's records: its files in offset order, each sorted (a file is one flush,
    so memory stays bounded by the flush size, however long the archive)."""
    conditions = ["true"]
    if window.start_ms is not None:
        conditions.append(f"epoch_ms(kafka_timestamp) >= {int(window.start_ms)}")
    if window.end_ms is not None:
        conditions.append(f"epoch_ms(kafka_timestamp) <= {int(window.end_ms)}")
    query = (
        'SELECT topic, "partition", "offset", epoch_ms(kafka_timestamp), timestamp_type, '  # noqa: S608  # integer bounds only
        "key, value, headers FROM read_parquet(?, hive_partitioning = false) "
        f'WHERE {" AND ".join(conditions)} ORDER BY "offset"'
    )
    cursor = con.cursor()
    try:
        for part in sorted(parts, key=lambda p: p.first_offset):
            cursor.execute(query, [str(part.path)])
            while batch := cursor.fetchmany(_FETCH):
                for topic, partition, offset, ts, ts_type, key, value, headers in batch:
                    yield RawRecord(
                        topic=topic,
                        partition=partition,
                        offset=offset,
                        timestamp_ms=ts,
                        key=key,
                        value=value,
                        headers=headers_from_json(headers),
                        timestamp_type=ts_type,
                    )
    finally:
        cursor.close()


def archive_streams(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    topics: Sequence[str] | None = None,
    window: TimeWindow | None = None,
) -> SourceStreams:
    """Lazy per-partition streams from the archive under ``root`` (read with ``con``)."""
    window = window or TimeWindow()
    files = archive_files(root, topics, window)
    partitions: dict[str, int] = {}
    for topic, partition in files:
        partitions[topic] = max(partitions.get(topic, 0), partition + 1)
    streams = [_read_partition(con, files[tp], window) for tp in sorted(files)]
    return SourceStreams(streams, partitions)


async def kafka_streams(  # noqa: PLR0912  # one read loop with its window checks
    kafka: KafkaSettings,
    topics: Sequence[str],
    window: TimeWindow | None = None,
    *,
    dedupe: bool = True,
) -> SourceStreams:
    """Read ``window`` of ``topics`` from Kafka (up to the end offsets at the start); with
    ``dedupe`` (the default) each event id once per topic, else every record as stored."""
    window = window or TimeWindow()
    consumer = clients.consumer(kafka, group_id=None)
    await clients.start(consumer, kafka)
    try:
        assigned: list[Any] = []
        partitions: dict[str, int] = {}
        counts = await topic_partitions(kafka, topics)
        for topic in topics:
            if topic not in counts:
                raise ReplayPlanError(f"topic {topic!r} does not exist on {kafka.describe()}")
            partitions[topic] = counts[topic]
            assigned.extend(aiokafka.TopicPartition(topic, p) for p in range(counts[topic]))
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        starts = await consumer.beginning_offsets(assigned)
        if window.start_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(assigned, window.start_ms))
            for tp in assigned:
                hit = found.get(tp)
                starts[tp] = ends[tp] if hit is None else hit.offset
        collected: dict[Any, list[RawRecord]] = {tp: [] for tp in assigned}
        pending: set[Any] = set()
        for tp in assigned:
            if starts[tp] < ends[tp]:
                consumer.seek(tp, starts[tp])
                pending.add(tp)
            else:
                consumer.pause(tp)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        break
                    if window.contains(message.timestamp):
                        collected[tp].append(raw_record(message))
            for tp in sorted(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
        read = [collected[tp] for tp in assigned]
        if not dedupe:
            return SourceStreams(read, partitions)
        streams, duplicates = drop_repeated_events(read, event_id_of_value)
        return SourceStreams(streams, partitions, duplicates)
    finally:
        await consumer.stop()
