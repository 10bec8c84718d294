"""Time for the telemetry partitions a worker owns that have gone silent.

A silent partition's clock follows the worker's estimate of event time less ``idle_s``, by
a ``TelemetryWatermark`` written into the partition itself (``steps.site_partition``): its
windows close when the watermark is read back, at its place among the records, so a re-run
of the log (a new owner, a replay) closes them between the same records. Watermarks sit on
the shortest window's close instants and go one at a time per partition: the next once this
one was read back, or after ``WATERMARK_RETRY_S`` (lost with a broker, say).

The estimate: the newest record's event time of any partition the worker owns plus the wall
time since. A worker whose partitions never had a record (with few sites, every partition
of one worker may be empty) reads the other partitions' progress on the slices topic (their
owners' stream time) at most every ``PROBE_EVERY_S``, so its empty partitions get a clock
too and the leader waits for them as for any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

# aiokafka ships no type information
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]

from streams.agents.site_work import CycleBatch, OwnedTelemetry
from streams.steps import slices
from streams.steps.site_partition import close_grid

log = logging.getLogger(__name__)

NAME = "site-tasks"
#: a watermark not read back after this long (wall seconds) is written again
WATERMARK_RETRY_S = 3.0
#: how often a worker without a record of its own reads the others' progress (wall seconds)
PROBE_EVERY_S = 1.0
#: how long reading the last progress records may take (seconds)
READ_TIMEOUT_S = 10.0

ProgressReader = Callable[[list[int]], Awaitable[dict[int, slices.PartitionProgress]]]


class PartitionClocks:
    """Watermarks for a worker's silent telemetry partitions (see the module doc)."""

    def __init__(self, windows_s: Sequence[int], partitions: int, read: ProgressReader) -> None:
        self.grid = min(windows_s) * 1_000_000  # watermarks at the shortest window's closes
        self.partitions = partitions
        self.read = read
        self.probed: tuple[int | None, int] = (None, -(2**62))  # (clock, wall micros)
        self.written = 0  #: watermarks written

    def watermark(
        self, p: int, owned: OwnedTelemetry, estimate: int, batch: CycleBatch, now: int
    ) -> None:
        """Partition ``p``'s watermark for ``estimate`` into ``batch``, when it moves the
        clock and none is on its way."""
        part = owned.telemetry
        at = close_grid(estimate - part.idle, self.grid, part.grace)
        clock = part.clock
        if clock is not None and at <= clock:
            return
        sent = owned.watermark_sent
        waiting = sent is not None and (clock is None or clock < sent)
        if waiting and now - owned.watermark_sent_at < WATERMARK_RETRY_S * 1e6:
            return
        batch.watermarks.append((p, at))
        owned.watermark_sent, owned.watermark_sent_at = at, now
        self.written += 1

    async def estimate(self, owned: Mapping[int, OwnedTelemetry], now: int) -> int | None:
        """The event time now as the worker sees it (module doc); None: no estimate, or
        none needed."""
        known = [
            o.record_clock + (now - o.moved_at)
            for o in owned.values()
            if o.record_clock is not None
        ]
        if known:
            return max(known)
        if all(o.telemetry.clock is not None for o in owned.values()):
            return None  # nothing to write a first watermark to
        clock, read_at = self.probed
        if now - read_at >= PROBE_EVERY_S * 1e6:
            others = [p for p in range(self.partitions) if p not in owned]
            try:
                found = await self.read(others) if others else {}
            except Exception as exc:  # a slow broker: tried again in PROBE_EVERY_S
                log.info("%s: the other partitions' progress not read: %r", NAME, exc)
                found = {}
            clocks = [g.clock for g in found.values() if g.clock is not None]
            self.probed = clock, read_at = (max(clocks) if clocks else None), now
        return None if clock is None else clock + (now - read_at)


async def last_progress(
    consumer: Any, topic: str, partitions: list[int]
) -> dict[int, slices.PartitionProgress]:
    """The progress in the last record of each of the slices topic's ``partitions``
    (absent: nothing published there), with a consumer outside the group (the probe)."""
    tps = [TopicPartition(topic, p) for p in partitions]
    found: dict[int, slices.PartitionProgress] = {}
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    begins = await consumer.beginning_offsets(tps)
    wanted = {tp for tp in tps if ends[tp] > begins[tp]}
    for tp in wanted:
        consumer.seek(tp, ends[tp] - 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READ_TIMEOUT_S
    while wanted:
        if loop.time() > deadline:
            raise TimeoutError(f"could not read the last records of {sorted(wanted)}")
        for tp, records in (await consumer.getmany(*wanted, timeout_ms=500)).items():
            if not records:
                continue
            wanted.discard(tp)
            try:
                found[tp.partition] = slices.decode(records[-1].value).progress
            except Exception:  # not ours: that partition starts afresh, said here
                log.warning("%s: the last record of %s is not a slice", NAME, tp)
    return found
