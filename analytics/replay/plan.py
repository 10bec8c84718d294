"""Replay order and pacing (pure: no Kafka, no clock of its own).

Order: the records of every source topic-partition are merged into one sequence by their
*effective* time, the running maximum of the Kafka timestamps of that partition up to the
record. Because the effective time never decreases along a partition, the merge keeps every
partition (hence every key) in offset order even when producer timestamps go backwards;
ties are broken by (topic, partition, offset), so the same input always yields the same
sequence.

Pacing: at ``speed`` X a record is due ``(effective_time - first_effective_time) / X``
seconds after the replay started, measured on a monotonic clock; ``speed=None`` means as
fast as possible.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from analytics.archive.rows import RawRecord

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class ReplayPlanError(ValueError):
    """Input the replay cannot honour: offsets out of order, bad speed, prefix or time."""


@dataclass(frozen=True)
class Scheduled:
    """A record with its effective time (ms) in the merged replay order."""

    effective_ms: int
    record: RawRecord


def _effective(stream: Iterable[RawRecord]) -> Iterator[tuple[int, str, int, int, RawRecord]]:
    latest: int | None = None
    last_offset: int | None = None
    where: tuple[str, int] | None = None
    for record in stream:
        here = (record.topic, record.partition)
        if where is not None and here != where:
            raise ReplayPlanError(
                f"one replay stream mixes {where[0]}[{where[1]}] and {here[0]}[{here[1]}]"
            )
        if last_offset is not None and record.offset <= last_offset:
            raise ReplayPlanError(
                f"{record.topic}[{record.partition}] offsets out of order: "
                f"{record.offset} after {last_offset}"
            )
        where, last_offset = here, record.offset
        latest = record.timestamp_ms if latest is None else max(latest, record.timestamp_ms)
        yield latest, record.topic, record.partition, record.offset, record


def merge_streams(streams: Iterable[Iterable[RawRecord]]) -> Iterator[Scheduled]:
    """Merge per-topic-partition streams (each in offset order) into the replay order."""
    merged = heapq.merge(*(_effective(s) for s in streams), key=lambda item: item[:4])
    for effective_ms, _topic, _partition, _offset, record in merged:
        yield Scheduled(effective_ms, record)


def check_speed(speed: float | None) -> float | None:
    """``speed`` if usable (a finite factor > 0) or None for as fast as possible."""
    if speed is None:
        return None
    if not speed > 0 or speed == float("inf"):
        raise ReplayPlanError(f"--speed must be a finite factor > 0, got {speed}")
    return speed


def due_offset_s(effective_ms: int, first_ms: int, speed: float | None) -> float:
    """Seconds after the start at which a record of ``effective_ms`` is due (0 at --max)."""
    if speed is None:
        return 0.0
    return max(0, effective_ms - first_ms) / 1000.0 / speed


def target_topic(prefix: str, topic: str) -> str:
    """The namespaced copy of ``topic``: ``prefix + topic``, checked to be a legal name."""
    if not prefix:
        raise ReplayPlanError("a replay needs a non-empty --prefix (never the original topics)")
    name = prefix + topic
    if not _TOPIC_RE.fullmatch(name):
        raise ReplayPlanError(f"{name!r} is not a valid Kafka topic name")
    return name


def parse_time_ms(text: str) -> int:
    """ISO 8601 time (``2026-11-24T01:00:00Z``; naive = UTC) or epoch ms -> epoch ms."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ReplayPlanError(f"not an ISO 8601 time or epoch milliseconds: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class TimeWindow:
    """Kafka-timestamp window ``[start_ms, end_ms]`` (inclusive; None = open)."""

    start_ms: int | None = None
    end_ms: int | None = None

    def __post_init__(self) -> None:
        if self.start_ms is not None and self.end_ms is not None and self.end_ms < self.start_ms:
            raise ReplayPlanError(f"--to ({self.end_ms}) is before --from ({self.start_ms})")

    def contains(self, timestamp_ms: int) -> bool:
        if self.start_ms is not None and timestamp_ms < self.start_ms:
            return False
        return self.end_ms is None or timestamp_ms <= self.end_ms
