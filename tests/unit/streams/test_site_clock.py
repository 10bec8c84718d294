"""A worker's silent partitions (``streams.agents.site_clock``): one watermark at a time per
partition, on the shortest window's close instants, written again when not read back; the
estimate from the worker's own records, else from the other partitions' progress."""

from __future__ import annotations

import asyncio

from streams.agents.site_clock import PROBE_EVERY_S, WATERMARK_RETRY_S, PartitionClocks
from streams.agents.site_work import CycleBatch, OwnedTelemetry
from streams.steps.site_partition import PartitionTelemetry, watermark_record
from streams.steps.slices import PartitionProgress
from streams.testing.agents import Consumed

S = 1_000_000
T0 = 1_700_000_000 * S


class Reader:
    """The other partitions' progress, as the probe would read it (counted)."""

    def __init__(self, clocks: dict[int, int | None]) -> None:
        self.clocks = clocks
        self.calls: list[list[int]] = []

    async def __call__(self, partitions: list[int]) -> dict[int, PartitionProgress]:
        self.calls.append(partitions)
        return {p: PartitionProgress(p, self.clocks[p]) for p in partitions if p in self.clocks}


def owned(p: int = 0) -> OwnedTelemetry:
    return OwnedTelemetry(PartitionTelemetry(p, (1, 10), grace_s=1.0, idle_s=2.0), moved_at=0)


def read_back(o: OwnedTelemetry, at: int) -> None:
    from contract.codec import encode

    part = o.telemetry
    value = encode("TelemetryWatermark", watermark_record("app", part.partition, at))
    part.add([Consumed("site.telemetry", part.partition, part.next_offset, None, value)], 0)


def test_one_watermark_at_a_time_on_the_close_grid_and_again_when_lost() -> None:
    clocks = PartitionClocks((1, 10), 4, Reader({}))
    o = owned()
    batch = CycleBatch()
    clocks.watermark(0, o, T0 + 5 * S + S // 3, batch, now=0)
    # estimate - idle = T0 + 3.33 s -> the 1 s windows' close instant at or before: T0 + 3 s
    assert batch.watermarks == [(0, T0 + 3 * S)]
    clocks.watermark(0, o, T0 + 7 * S, batch, now=S)  # the first is not back yet: wait
    assert len(batch.watermarks) == 1
    later = round(WATERMARK_RETRY_S * S)
    clocks.watermark(0, o, T0 + 7 * S, batch, now=later)  # lost: written again
    assert batch.watermarks[-1] == (0, T0 + 5 * S)
    read_back(o, T0 + 5 * S)
    clocks.watermark(0, o, T0 + 7 * S + S // 2, batch, now=later + 1)  # nothing new to say
    assert len(batch.watermarks) == 2
    clocks.watermark(0, o, T0 + 8 * S, batch, now=later + 2)
    assert batch.watermarks[-1] == (0, T0 + 6 * S)
    assert clocks.written == 3


def test_the_estimate_is_the_newest_record_plus_the_wall_time_since() -> None:
    reader = Reader({3: T0})
    clocks = PartitionClocks((1, 10), 4, reader)
    a, b = owned(0), owned(1)
    a.record_clock, a.moved_at = T0 + 10 * S, 5 * S
    b.record_clock, b.moved_at = T0 + 11 * S, 7 * S
    assert asyncio.run(clocks.estimate({0: a, 1: b}, now=8 * S)) == T0 + 13 * S
    assert reader.calls == []  # records of its own: no probe


def test_a_worker_with_only_empty_partitions_reads_the_others_progress_now_and_then() -> None:
    reader = Reader({2: T0 + 4 * S, 3: None})
    clocks = PartitionClocks((1, 10), 4, reader)
    empty = {0: owned(0), 1: owned(1)}
    assert asyncio.run(clocks.estimate(empty, now=10 * S)) == T0 + 4 * S
    assert reader.calls == [[2, 3]]
    # within PROBE_EVERY_S: the last reading plus the wall time since, no new read
    assert asyncio.run(clocks.estimate(empty, now=10 * S + S // 2)) == T0 + 4 * S + S // 2
    assert len(reader.calls) == 1
    reader.clocks[2] = T0 + 9 * S
    later = 10 * S + round(PROBE_EVERY_S * S)
    assert asyncio.run(clocks.estimate(empty, now=later)) == T0 + 9 * S
    assert len(reader.calls) == 2


def test_no_estimate_when_nobody_has_a_clock_or_none_is_needed() -> None:
    clocks = PartitionClocks((1, 10), 2, Reader({1: None}))
    assert asyncio.run(clocks.estimate({0: owned(0)}, now=0)) is None
    marked = owned(0)
    read_back(marked, T0)  # a clock from a watermark, no record: nothing to start
    assert asyncio.run(clocks.estimate({0: marked}, now=0)) is None


def test_a_probe_that_fails_is_tried_again_later() -> None:
    calls = []

    async def broken(partitions: list[int]) -> dict[int, PartitionProgress]:
        calls.append(partitions)
        raise TimeoutError("could not read the last records")

    clocks = PartitionClocks((1, 10), 2, broken)
    assert asyncio.run(clocks.estimate({0: owned(0)}, now=0)) is None
    assert asyncio.run(clocks.estimate({0: owned(0)}, now=1)) is None
    assert len(calls) == 1
