"""The two sides of ``flowerhub replay diff``: an archive directory or a Kafka topic prefix.

A side spec is one of:

- ``kafka:PREFIX``: the topics ``PREFIX + name`` on the broker (``kafka:`` = the originals);
- ``archive:DIR`` or ``archive:DIR:PREFIX``: an archive whose topics carry ``PREFIX``;
- a bare existing directory: ``archive:DIR``; any other bare string: ``kafka:STRING``.

Events are decoded with the project codec and named by their topic *without* the prefix,
so the two sides line up topic by topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.archive.compact import live_parts
from analytics.archive.rows import RawRecord
from analytics.db import sql_string
from analytics.replay.diff import DiffEvent
from analytics.replay.plan import ReplayPlanError
from analytics.replay.sources import kafka_streams
from contract.kafka.admin import topic_partitions
from contract.kafka.settings import KafkaSettings


@dataclass(frozen=True)
class DiffSide:
    """``archive`` set: read that directory; otherwise read Kafka. Topics carry ``prefix``."""

    prefix: str
    archive: Path | None = None

    def describe(self) -> str:
        where = f"archive {self.archive}" if self.archive else "kafka"
        return f"{where} (prefix {self.prefix!r})"


def parse_side(spec: str) -> DiffSide:
    """Parse a side spec (see module doc)."""
    if spec.startswith("kafka:"):
        return DiffSide(spec.removeprefix("kafka:"))
    if spec.startswith("archive:"):
        rest = spec.removeprefix("archive:")
        directory, _, prefix = rest.partition(":")
        if not directory:
            raise ReplayPlanError(f"no directory in {spec!r}: use archive:DIR[:PREFIX]")
        return DiffSide(prefix, Path(directory))
    if not spec:
        raise ReplayPlanError("empty side: use kafka:PREFIX, archive:DIR[:PREFIX] or a directory")
    if Path(spec).is_dir():
        return DiffSide("", Path(spec))
    return DiffSide(spec)


def to_diff_event(record: RawRecord, prefix: str) -> DiffEvent:
    """Decode ``record`` for the diff; undecodable values compare by their bytes."""
    from contract.codec import default_codec
    from contract.errors import EventDecodeError

    topic = record.topic.removeprefix(prefix)
    if record.value is None:
        return DiffEvent(topic, record.key, None, None)
    try:
        decoded = default_codec().decode(record.value)
    except EventDecodeError:
        return DiffEvent(topic, record.key, None, record.value)
    return DiffEvent(topic, record.key, decoded.record, record.value)


def read_archive_side(side: DiffSide, topics: Sequence[str] | None) -> list[DiffEvent]:
    """Every event of the side's archive (per partition in offset order)."""
    if side.archive is None or not side.archive.is_dir():
        raise ReplayPlanError(f"archive directory not found: {side.archive}")
    wanted = None if topics is None else [side.prefix + t for t in topics]
    parts = [p for p in live_parts(side.archive, wanted) if p.topic.startswith(side.prefix)]
    if not parts:
        return []
    files = ", ".join(sql_string(str(p.path)) for p in parts)
    with duckdb.connect() as con:
        rows = con.execute(
            'SELECT topic, "partition", "offset", epoch_ms(kafka_timestamp), key, value '  # noqa: S608  # escaped paths
            f"FROM read_parquet([{files}], hive_partitioning = false) "
            'ORDER BY topic, "partition", "offset"'
        ).fetchall()
    return [
        to_diff_event(RawRecord(t, p, o, ts, key, value), side.prefix)
        for t, p, o, ts, key, value in rows
    ]


async def read_kafka_side(
    side: DiffSide, kafka: KafkaSettings, topics: Sequence[str]
) -> list[DiffEvent]:
    """Every event now on ``prefix + topic`` for each topic that exists on the broker."""
    existing = await topic_partitions(kafka, [side.prefix + t for t in topics])
    names = [side.prefix + t for t in topics if side.prefix + t in existing]
    if not names:
        return []
    source = await kafka_streams(kafka, names)
    return [to_diff_event(r, side.prefix) for stream in source.streams for r in stream]
