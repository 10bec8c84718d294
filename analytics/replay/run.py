"""One replay end to end: read the source, create the copy topics, produce in order.

The copy of a topic of the topic table is created from its table row
(``contract.kafka.admin.create_topics(prefix=...)``: same partitions and configs); a topic outside
the table (tests, ad-hoc topics) gets as many partitions as the source uses. Every copy is
checked to have each partition the source uses before the first record is sent, since a
record always goes to the same partition number it came from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from analytics.replay.plan import (
    ReplayPlanError,
    TimeWindow,
    check_speed,
    merge_streams,
    parse_time_ms,
)
from analytics.replay.replay import (
    KafkaSink,
    ReplayError,
    ReplayStats,
    needed_partitions,
    replay_producer,
    run_replay,
)
from analytics.replay.sources import SourceStreams, archive_streams, kafka_streams
from contract.kafka import clients
from contract.kafka.admin import create_named_topics, create_topics, topic_partitions
from contract.kafka.delivery import stop_within
from contract.kafka.settings import KafkaSettings
from contract.topics import TOPICS

log = logging.getLogger(__name__)

REPLAY_STOP_S = 5.0  # the producer stops within this even with Kafka gone (issue 15)


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay (``log`` set: from that archive; else from Kafka) and how."""

    kafka: KafkaSettings
    prefix: str
    log: Path | None = None
    window: TimeWindow = field(default_factory=TimeWindow)
    speed: float | None = None
    topics: tuple[str, ...] | None = None
    source_prefix: str = ""
    keep_timestamps: bool = True

    def __post_init__(self) -> None:
        check_speed(self.speed)
        if not self.prefix:
            raise ReplayPlanError("a replay needs a non-empty prefix")
        if self.prefix == self.source_prefix:
            raise ReplayPlanError("the copy prefix equals the source prefix: that is the source")

    @classmethod
    def from_cli(
        cls,
        *,
        log: Path | None,
        kafka: KafkaSettings,
        prefix: str,
        start: str | None,
        end: str | None,
        speed: float | None,
        topics: Sequence[str] | None,
        source_prefix: str,
        keep_timestamps: bool,
    ) -> ReplayRequest:
        window = TimeWindow(
            None if start is None else parse_time_ms(start),
            None if end is None else parse_time_ms(end),
        )
        return cls(
            kafka=kafka,
            prefix=prefix,
            log=log,
            window=window,
            speed=speed,
            topics=None if topics is None else tuple(topics),
            source_prefix=source_prefix,
            keep_timestamps=keep_timestamps,
        )


async def create_copy_topics(kafka: KafkaSettings, prefix: str, needed: Mapping[str, int]) -> None:
    """Create ``prefix + name`` for every source topic name in ``needed`` (name -> partitions)."""
    rows = [t for t in TOPICS if t.name in needed]
    if rows:
        await create_topics(kafka, prefix, topics=rows)
    table = {t.name for t in rows}
    for name, partitions in sorted(needed.items()):
        if name not in table:
            await create_named_topics(kafka, [prefix + name], partitions)


async def check_copy_partitions(producer: Any, needed: Mapping[str, int]) -> None:
    """Every copy topic has at least the partitions the source uses (else nothing is sent)."""
    for topic, count in sorted(needed.items()):
        have = await producer.partitions_for(topic)
        if not have or max(have) + 1 < count:
            raise ReplayError(
                f"copy topic {topic!r} has {len(have or ())} partitions, the source uses {count}"
            )


async def _kafka_source(request: ReplayRequest) -> SourceStreams:
    wanted = request.topics or tuple(t.name for t in TOPICS)
    names = [request.source_prefix + t for t in wanted]
    existing = await topic_partitions(request.kafka, names)
    missing = [n for n in names if n not in existing]
    if request.topics and missing:
        raise ReplayPlanError(
            f"source topics not on {request.kafka.describe()}: {', '.join(missing)}"
        )
    return await kafka_streams(request.kafka, [n for n in names if n in existing], request.window)


async def replay(request: ReplayRequest) -> ReplayStats:
    """Run ``request`` (see module doc); returns what was sent."""
    con = duckdb.connect()
    try:
        if request.log is not None:
            topics = (
                None
                if request.topics is None
                else [request.source_prefix + t for t in request.topics]
            )
            source = archive_streams(con, request.log, topics, request.window)
        else:
            source = await _kafka_source(request)
        if not source.partitions:
            return ReplayStats()
        logical = {
            topic.removeprefix(request.source_prefix): count
            for topic, count in source.partitions.items()
        }
        await create_copy_topics(request.kafka, request.prefix, logical)
        needed = needed_partitions(request.prefix, source.partitions, request.source_prefix)
        producer = replay_producer(request.kafka)
        await clients.start(producer, request.kafka)
        sink = KafkaSink(producer)
        try:
            await check_copy_partitions(producer, needed)
            stats = await run_replay(
                merge_streams(source.streams),
                sink,
                prefix=request.prefix,
                speed=request.speed,
                keep_timestamps=request.keep_timestamps,
                source_prefix=request.source_prefix,
            )
            stats.duplicates = source.duplicates
            return stats
        finally:
            left = await sink.close()
            if left:  # a replay is re-run whole: its copy is deterministic, readers dedupe
                log.warning(
                    "replay into %r stopped with %d record(s) not acknowledged, e.g. %s[%s]",
                    request.prefix,
                    len(left),
                    left[0].topic,
                    left[0].partition,
                )
            await stop_within(producer, REPLAY_STOP_S)
    finally:
        con.close()
