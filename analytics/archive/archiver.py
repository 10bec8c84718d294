"""The archiver: consume topics into the Parquet archive, resuming exactly where it stopped.

Progress lives in the archive, not in the consumer group: at start the archiver reads the
last offset of every topic-partition from the names of the complete part files
(:func:`~analytics.archive.layout.recover_positions`), assigns every partition of its topics
itself and seeks to one past it (the earliest offset where nothing is archived yet). A crash
at any point loses only the unflushed buffer and at most a hidden temporary file, both of
which are read again; nothing is archived twice. After each durable flush the next offsets
are also committed to the consumer group, so standard tools show the archiver's lag, but
those commits are never trusted for resuming.

One archiver process owns an archive directory (an exclusive lock file enforces it). The
partitions of its topics are read at start: partitions added to a topic later are picked up
at the next restart (from their earliest offset, so still nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiokafka  # type: ignore[import-untyped, unused-ignore]  # ships no py.typed

from analytics.archive.compact import remove_covered_parts
from analytics.archive.dedupe import DEFAULT_PER_TOPIC, SeenIds, recent_ids
from analytics.archive.layout import TopicPartition, check_topic, parse_part, recover_positions
from analytics.archive.rows import DecodedEvent, Decoder, decode_row
from analytics.archive.writer import ArchiveWriter
from contract.kafka import clients
from contract.kafka.admin import report_replication, topic_partitions
from contract.kafka.records import raw_record
from contract.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

LOCK_NAME = ".archiver.lock"
COMMIT_S = 5.0  # an informational offset commit waits at most this
STOP_S = 5.0  # the consumer's stop waits at most this (then the process exits anyway)
# SIGTERM -> stopped, whatever Kafka does: the last poll, a flush, its commit, the stop
STOP_BOUND_S = 1.0 + COMMIT_S + STOP_S + 2.0


class ArchiverError(RuntimeError):
    """The archiver cannot run: missing topic, archive locked by another process..."""


@dataclass(frozen=True)
class ArchiverConfig:
    """Where to read, where to write, and how often to flush."""

    out: Path
    kafka: KafkaSettings
    topics: tuple[str, ...]
    group_id: str = "flowerhub-archiver"
    flush_records: int = 50_000
    flush_interval_s: float = 5.0
    poll_timeout_ms: int = 200
    poll_records: int = 10_000  # max records per poll
    dedupe_window: int = DEFAULT_PER_TOPIC  # event ids remembered per topic (dedupe.py)

    def __post_init__(self) -> None:
        if not self.topics:
            raise ArchiverError("no topics to archive")
        for topic in self.topics:
            check_topic(topic)
        if self.flush_records < 1 or self.flush_interval_s <= 0 or self.poll_records < 1:
            raise ArchiverError(
                "flush_records and poll_records must be >= 1 and flush_interval_s > 0"
            )


@dataclass
class ArchiverStats:
    """What one run did."""

    archived: int = 0  # rows made durable in this run
    undecodable: int = 0
    files: int = 0
    flushes: int = 0
    duplicates: int = 0  # records skipped: their event id was archived already
    resumed_from: dict[TopicPartition, int] = field(default_factory=dict)


def codec_decoder() -> tuple[Decoder, tuple[type[Exception], ...]]:
    """The project codec as an archive decoder, with the error type it raises."""
    from contract.codec import default_codec
    from contract.errors import EventDecodeError

    codec = default_codec()

    def decode(value: bytes) -> DecodedEvent:
        decoded = codec.decode(value)
        return DecodedEvent(decoded.name, decoded.record)

    return decode, (EventDecodeError,)


@contextlib.contextmanager
def archive_lock(root: Path) -> Iterator[None]:
    """Hold the archive's exclusive lock (fails at once if another archiver holds it)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_NAME).open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiverError(f"another archiver is writing to {root}") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class Archiver:
    """Consumes ``config.topics`` into ``config.out`` until stopped (see module doc)."""

    def __init__(
        self,
        config: ArchiverConfig,
        decoder: Decoder | None = None,
        decode_errors: tuple[type[Exception], ...] = (),
    ) -> None:
        self.config = config
        if decoder is None:
            decoder, decode_errors = codec_decoder()
        self._decoder = decoder
        self._errors = decode_errors

    async def run(
        self,
        stop: asyncio.Event | None = None,
        until: Callable[[ArchiverStats], bool] | None = None,
        on_ready: Callable[[ArchiverStats], None] | None = None,
    ) -> ArchiverStats:
        """Archive until ``stop`` is set or ``until(stats)`` holds after a flush.

        ``on_ready(stats)`` is called once every partition is positioned (``resumed_from``).
        """
        stop = stop or asyncio.Event()
        with archive_lock(self.config.out):
            remove_covered_parts(self.config.out)  # an interrupted compaction's leftovers
            writer = ArchiveWriter(self.config.out, recover_positions(self.config.out))
            seen = SeenIds(self.config.dedupe_window)
            for topic, ids in recent_ids(
                self.config.out, self.config.topics, self.config.dedupe_window
            ).items():
                seen.remember(topic, ids)
            try:
                return await self._consume(writer, seen, stop, until, on_ready)
            finally:
                writer.close()

    async def _start_consumer(self, writer: ArchiveWriter, stats: ArchiverStats) -> Any:
        kafka = self.config.kafka
        try:
            counts = await topic_partitions(kafka, self.config.topics)
        except clients.KafkaUnreachableError as exc:
            raise ArchiverError(str(exc)) from exc
        missing = [t for t in self.config.topics if t not in counts]
        if missing:
            raise ArchiverError(f"topics missing on {kafka.describe()}: {', '.join(missing)}")
        await report_replication(kafka, self.config.topics, "archiver", log)
        consumer = clients.consumer(
            kafka,
            group_id=self.config.group_id,
            client_id=self.config.group_id,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        try:
            await clients.start(consumer, kafka)
        except clients.KafkaUnreachableError as exc:
            raise ArchiverError(str(exc)) from exc
        try:
            assigned = [
                aiokafka.TopicPartition(topic, p)
                for topic in self.config.topics
                for p in range(counts[topic])
            ]
            consumer.assign(assigned)
            earliest = await consumer.beginning_offsets(assigned)
            for ktp in assigned:
                tp = TopicPartition(ktp.topic, ktp.partition)
                position = writer.next_offset(tp)
                if position is None:
                    position = earliest[ktp]
                elif position < earliest[ktp]:
                    log.warning(
                        "%s[%d]: offsets %d..%d were deleted before archiving",
                        tp.topic,
                        tp.partition,
                        position,
                        earliest[ktp] - 1,
                    )
                    position = earliest[ktp]
                stats.resumed_from[tp] = position
                consumer.seek(ktp, position)
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _consume(
        self,
        writer: ArchiveWriter,
        seen: SeenIds,
        stop: asyncio.Event,
        until: Callable[[ArchiverStats], bool] | None,
        on_ready: Callable[[ArchiverStats], None] | None,
    ) -> ArchiverStats:
        stats = ArchiverStats()
        consumer = await self._start_consumer(writer, stats)
        try:
            if on_ready is not None:
                on_ready(stats)
            last_flush = time.monotonic()
            while not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=self.config.poll_timeout_ms, max_records=self.config.poll_records
                )
                for messages in batches.values():
                    rows = [
                        decode_row(raw_record(m), self._decoder, self._errors) for m in messages
                    ]
                    stats.undecodable += sum(1 for row in rows if row.error_type is not None)
                    before = seen.duplicates
                    rows = seen.fresh(rows)  # each event id once per topic (dedupe.py)
                    stats.duplicates += seen.duplicates - before
                    writer.append(rows)
                due = time.monotonic() - last_flush >= self.config.flush_interval_s
                if writer.buffered and (writer.buffered >= self.config.flush_records or due):
                    await self._flush(consumer, writer, stats)
                    last_flush = time.monotonic()
                    if until is not None and until(stats):
                        break
                elif due:
                    last_flush = time.monotonic()
            if writer.buffered:
                await self._flush(consumer, writer, stats)
        finally:
            try:  # with Kafka unreachable stop() may wait on the brokers: bounded
                await asyncio.wait_for(consumer.stop(), STOP_S)
            except TimeoutError:
                log.warning("archiver: Kafka consumer did not stop within %.0f s", STOP_S)
        return stats

    async def _flush(self, consumer: Any, writer: ArchiveWriter, stats: ArchiverStats) -> None:
        buffered = writer.buffered
        written = writer.flush()
        stats.archived += buffered
        stats.files += len(written)
        stats.flushes += 1
        offsets: dict[Any, Any] = {}
        for tp in {parse_part(path).topic_partition for path in written}:
            nxt = writer.next_offset(tp)
            if nxt is not None:
                offsets[aiokafka.TopicPartition(tp.topic, tp.partition)] = (
                    aiokafka.OffsetAndMetadata(nxt, "")
                )
        try:  # bounded: a frozen broker must not hold the archiver (issue 15)
            await asyncio.wait_for(consumer.commit(offsets), COMMIT_S)
        except Exception as exc:  # informational only: the archive is the source of truth
            log.warning("offset commit to group %s failed: %s", self.config.group_id, exc)


async def archive(
    config: ArchiverConfig,
    stop: asyncio.Event | None = None,
    until: Callable[[ArchiverStats], bool] | None = None,
) -> ArchiverStats:
    """Run an :class:`Archiver` with the project codec."""
    return await Archiver(config).run(stop, until)


def archived_offsets(root: Path, topics: Sequence[str] | None = None) -> dict[TopicPartition, int]:
    """Next offset per topic-partition of the archive under ``root`` (optionally filtered)."""
    positions = recover_positions(root)
    if topics is None:
        return positions
    wanted = set(topics)
    return {tp: offset for tp, offset in positions.items() if tp.topic in wanted}
