"""One replay end to end: read the source, create the copy topics, produce in order.

The copy of a topic of the topic table is created from its table row
(``contract.topics.create_topics(prefix=...)``: same partitions and configs); a topic outside
the table (tests, ad-hoc topics) gets as many partitions as the source uses. Every copy is
checked to have each partition the source uses before the first record is sent, since a
record always goes to the same partition number it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from analytics.archive.metadata import topic_partitions
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


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay (``log`` set: from that archive; else from Kafka) and how."""

    bootstrap: str
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
        bootstrap: str,
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
            bootstrap=bootstrap,
            prefix=prefix,
            log=log,
            window=window,
            speed=speed,
            topics=None if topics is None else tuple(topics),
            source_prefix=source_prefix,
            keep_timestamps=keep_timestamps,
        )


async def create_copy_topics(bootstrap: str, prefix: str, needed: Mapping[str, int]) -> None:
    """Create ``prefix + name`` for every source topic name in ``needed`` (name -> partitions)."""
    from contract.topics import TOPICS, create_topics
    from flowerhub.broker.admin import create_topics_async

    rows = [t for t in TOPICS if t.name in needed]
    if rows:
        await create_topics(bootstrap, prefix, topics=rows)
    table = {t.name for t in rows}
    for name, partitions in sorted(needed.items()):
        if name not in table:
            await create_topics_async(bootstrap, [prefix + name], partitions)


async def check_copy_partitions(producer: Any, needed: Mapping[str, int]) -> None:
    """Every copy topic has at least the partitions the source uses (else nothing is sent)."""
    for topic, count in sorted(needed.items()):
        have = await producer.partitions_for(topic)
        if not have or max(have) + 1 < count:
            raise ReplayError(
                f"copy topic {topic!r} has {len(have or ())} partitions, the source uses {count}"
            )


async def _kafka_source(request: ReplayRequest) -> SourceStreams:
    from contract.topics import TOPICS

    wanted = request.topics or tuple(t.name for t in TOPICS)
    names = [request.source_prefix + t for t in wanted]
    existing = await topic_partitions(request.bootstrap, names)
    missing = [n for n in names if n not in existing]
    if request.topics and missing:
        raise ReplayPlanError(f"source topics not on {request.bootstrap}: {', '.join(missing)}")
    return await kafka_streams(
        request.bootstrap, [n for n in names if n in existing], request.window
    )


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
        await create_copy_topics(request.bootstrap, request.prefix, logical)
        needed = needed_partitions(request.prefix, source.partitions, request.source_prefix)
        producer = replay_producer(request.bootstrap)
        await producer.start()
        try:
            await check_copy_partitions(producer, needed)
            return await run_replay(
                merge_streams(source.streams),
                KafkaSink(producer),
                prefix=request.prefix,
                speed=request.speed,
                keep_timestamps=request.keep_timestamps,
                source_prefix=request.source_prefix,
            )
        finally:
            await producer.stop()
    finally:
        con.close()
