"""Republish a slice of the event log into a namespaced copy of the topics.

Each record goes to ``prefix + topic``, same partition number, same key, the original value
and header bytes unchanged and (by default) the original Kafka timestamp: no new ids, no
re-encoding. With the deterministic order of :mod:`analytics.replay.plan`, two replays of
the same input produce the same bytes in the same per-partition order, so a streams worker
run on the copy can be compared with the original run (``flowerhub replay diff``).

The pacing loop (:func:`run_replay`) talks to a :class:`ReplaySink`; the Kafka sink
(:class:`KafkaSink`) delivers through the project's per-record acknowledged sender over an
idempotent producer, so retries never reorder or duplicate a partition.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from analytics.archive.rows import RawRecord
from analytics.replay.plan import Scheduled, check_speed, due_offset_s, target_topic
from contract.kafka import clients
from contract.kafka.delivery import AckedSender, Outgoing
from contract.kafka.settings import KafkaSettings


class ReplayError(RuntimeError):
    """The copy topics cannot take the replay (missing topic or partition, send failure)."""


class ReplaySink(Protocol):
    """Where replayed records go: ``send`` may buffer, ``push`` hands every buffered record
    to the transport now (called before the pacer sleeps), ``flush`` also waits for acks."""

    async def send(self, topic: str, record: RawRecord, timestamp_ms: int | None) -> None: ...

    async def push(self) -> None: ...

    async def flush(self) -> None: ...


@dataclass
class ReplayStats:
    """What a replay did. ``late_s`` is the worst delay behind schedule at ``--speed``."""

    records: int = 0
    per_topic: Counter[str] = field(default_factory=Counter)
    first_ms: int | None = None
    last_ms: int | None = None
    wall_s: float = 0.0
    late_s: float = 0.0
    duplicates: int = 0  # source records left out: their event id was replayed already

    @property
    def span_s(self) -> float:
        """Event-log time covered (first to last effective Kafka timestamp)."""
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return (self.last_ms - self.first_ms) / 1000.0

    @property
    def realtime_factor(self) -> float | None:
        """Log time replayed per second of wall time."""
        return None if self.wall_s <= 0 else self.span_s / self.wall_s


async def run_replay(
    scheduled: Iterable[Scheduled],
    sink: ReplaySink,
    *,
    prefix: str,
    speed: float | None,
    keep_timestamps: bool = True,
    source_prefix: str = "",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> ReplayStats:
    """Send every scheduled record to ``sink`` at its due time (``speed=None``: at once).

    A record of topic ``source_prefix + name`` goes to ``prefix + name``.
    """
    speed = check_speed(speed)
    stats = ReplayStats()
    names: dict[str, str] = {}
    began = clock()
    origin = began  # pacing origin: when the first record is in hand
    for item in scheduled:
        record = item.record
        if stats.first_ms is None:
            stats.first_ms = item.effective_ms
            origin = clock()
        stats.last_ms = item.effective_ms
        if speed is not None:
            due = origin + due_offset_s(item.effective_ms, stats.first_ms, speed)
            now = clock()
            if due > now:
                await sink.push()  # everything due so far leaves before we wait
                await sleep(due - now)
                now = clock()
            stats.late_s = max(stats.late_s, now - due)
        topic = names.get(record.topic)
        if topic is None:
            topic = names[record.topic] = target_topic(
                prefix, record.topic.removeprefix(source_prefix)
            )
        timestamp = record.timestamp_ms if keep_timestamps else None
        await sink.send(topic, record, timestamp)
        stats.records += 1
        stats.per_topic[record.topic] += 1
    await sink.flush()
    stats.wall_s = clock() - began
    return stats


class KafkaSink:
    """A :class:`ReplaySink` on the per-record acknowledged sender
    (:class:`contract.kafka.delivery.AckedSender`): one lane per copy partition filling
    aiokafka's batches (no per-message future), so per-partition order is the replay order,
    a partition without a leader holds up only its own records and a failed batch resends
    only its own records through the same idempotent producer. At most ``window`` records
    wait for their acknowledgement at a time; :meth:`flush` waits up to ``flush_timeout_s``
    for the rest and names what was not acknowledged."""

    def __init__(
        self, producer: Any, *, window: int = 100_000, flush_timeout_s: float = 120.0
    ) -> None:
        self._producer = producer
        self._window = window
        self._flush_timeout_s = flush_timeout_s
        self._partitions: dict[str, set[int]] = {}
        self._rejected: list[str] = []
        self._sender: AckedSender | None = None

    @property
    def sender(self) -> AckedSender:
        if self._sender is None:  # made in the running loop, on first use
            self._sender = AckedSender(
                self._producer,
                name="replay",
                on_reject=lambda r, why: self._rejected.append(f"{r.topic}[{r.partition}]: {why}"),
            )
        return self._sender

    async def _check(self, topic: str, partition: int) -> None:
        known = self._partitions.get(topic)
        if known is None:
            found = await self._producer.partitions_for(topic)
            known = self._partitions[topic] = set(found or ())
        if partition not in known:
            raise ReplayError(
                f"copy topic {topic!r} has no partition {partition} "
                f"(it has {len(known)}); create it with at least {partition + 1}"
            )

    async def send(self, topic: str, record: RawRecord, timestamp_ms: int | None) -> None:
        if topic not in self._partitions or record.partition not in self._partitions[topic]:
            await self._check(topic, record.partition)
        if self._rejected:
            raise ReplayError(f"sending to the copy failed: {self._rejected[0]}")
        if timestamp_ms is None:  # stamped now, when the pacer sends it (not at batching)
            timestamp_ms = time.time_ns() // 1_000_000
        sender = self.sender
        sender.submit(
            Outgoing(
                topic, record.value, record.key, record.partition, timestamp_ms, record.headers
            )
        )
        if sender.pending >= self._window:
            await self._wait()

    async def push(self) -> None:
        """Every lane sends as soon as it can: nothing is held back here."""

    async def _wait(self) -> None:
        sender = self.sender
        if not await sender.drain(self._flush_timeout_s):
            raise ReplayError(
                f"sending to the copy failed: {sender.pending} record(s) not acknowledged "
                f"within {self._flush_timeout_s:g} s ({sender.last_error or 'no error seen'})"
            )
        if self._rejected:
            raise ReplayError(f"sending to the copy failed: {'; '.join(self._rejected[:3])}")

    async def flush(self) -> None:
        await self._wait()

    async def close(self) -> list[Outgoing]:
        """Stop the lanes; the records not acknowledged (logged by the caller)."""
        return [] if self._sender is None else await self._sender.close()


def replay_producer(kafka: KafkaSettings) -> Any:
    """An idempotent producer (acks=all: the connection factory's defaults) tuned for
    throughput (ordering kept per partition); not started."""
    return clients.producer(
        kafka,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )


def needed_partitions(
    prefix: str, partitions: Mapping[str, int], source_prefix: str = ""
) -> dict[str, int]:
    """Copy topic name -> minimum partition count, for the topics a replay will write."""
    return {
        target_topic(prefix, topic.removeprefix(source_prefix)): count
        for topic, count in sorted(partitions.items())
    }
