"""Replay order and pacing: deterministic merge keeping per-partition order (pure)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.archive.rows import RawRecord
from analytics.replay.plan import (
    ReplayPlanError,
    Scheduled,
    TimeWindow,
    check_speed,
    due_offset_s,
    merge_streams,
    parse_time_ms,
    target_topic,
)
from analytics.replay.replay import run_replay


def _rec(topic: str, partition: int, offset: int, ts: int) -> RawRecord:
    return RawRecord(
        topic, partition, offset, ts, f"k{offset}".encode(), f"{topic}/{offset}".encode()
    )


def _coords(items: list[Scheduled]) -> list[tuple[str, int, int, int]]:
    return [(s.record.topic, s.record.partition, s.record.offset, s.effective_ms) for s in items]


def test_merge_orders_by_time_then_topic_partition_offset() -> None:
    a = [_rec("a", 0, 0, 100), _rec("a", 0, 1, 300)]
    b = [_rec("b", 1, 5, 100), _rec("b", 1, 6, 200)]
    assert _coords(list(merge_streams([b, a]))) == [
        ("a", 0, 0, 100),
        ("b", 1, 5, 100),
        ("b", 1, 6, 200),
        ("a", 0, 1, 300),
    ]


def test_a_timestamp_going_back_never_reorders_its_partition() -> None:
    a = [_rec("a", 0, 0, 100), _rec("a", 0, 1, 500), _rec("a", 0, 2, 200)]
    b = [_rec("b", 0, 0, 300)]
    assert _coords(list(merge_streams([a, b]))) == [
        ("a", 0, 0, 100),
        ("b", 0, 0, 300),
        ("a", 0, 1, 500),
        ("a", 0, 2, 500),  # effective time is the running maximum
    ]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ([_rec("a", 0, 3, 1), _rec("a", 0, 3, 2)], "out of order"),
        ([_rec("a", 0, 3, 1), _rec("a", 0, 2, 2)], "out of order"),
        ([_rec("a", 0, 1, 1), _rec("a", 1, 2, 2)], "mixes"),
    ],
)
def test_bad_streams_are_refused(stream: list[RawRecord], message: str) -> None:
    with pytest.raises(ReplayPlanError, match=message):
        list(merge_streams([stream]))


_streams = st.lists(st.lists(st.integers(0, 10_000), max_size=30), min_size=1, max_size=6).map(
    lambda lists: [
        [_rec(f"t{i % 2}", i, offset, ts) for offset, ts in enumerate(timestamps)]
        for i, timestamps in enumerate(lists)
    ]
)


@given(_streams)
def test_merge_is_a_deterministic_permutation_keeping_partition_order(
    streams: list[list[RawRecord]],
) -> None:
    merged = list(merge_streams(streams))
    assert merged == list(merge_streams(list(reversed(streams))))  # input order is irrelevant
    records = sorted((r.topic, r.partition, r.offset) for s in streams for r in s)
    assert sorted((i.record.topic, i.record.partition, i.record.offset) for i in merged) == records
    per_partition: dict[tuple[str, int], list[int]] = defaultdict(list)
    for item in merged:
        per_partition[(item.record.topic, item.record.partition)].append(item.record.offset)
    for stream in streams:
        if stream:
            key = (stream[0].topic, stream[0].partition)
            assert per_partition[key] == [r.offset for r in stream]
    times = [item.effective_ms for item in merged]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("effective", "first", "speed", "due"),
    [
        (5_000, 1_000, 1.0, 4.0),
        (5_000, 1_000, 10.0, 0.4),
        (5_000, 1_000, None, 0.0),
        (900, 1_000, 2.0, 0.0),
    ],
)
def test_due_offset(effective: int, first: int, speed: float | None, due: float) -> None:
    assert due_offset_s(effective, first, speed) == pytest.approx(due)


@pytest.mark.parametrize("speed", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_speeds_are_refused(speed: float) -> None:
    with pytest.raises(ReplayPlanError, match="speed"):
        check_speed(speed)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-09-21T14:13:20Z", 1_790_000_000_000),
        ("2026-09-21T14:13:20", 1_790_000_000_000),
        ("2026-09-21T16:13:20+02:00", 1_790_000_000_000),
        ("2026-09-21T14:13:20.5Z", 1_790_000_000_500),
        ("1790000000000", 1_790_000_000_000),
    ],
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time_ms(text) == ms


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", ""])
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(ReplayPlanError, match="ISO 8601"):
        parse_time_ms(text)


@pytest.mark.parametrize(
    ("prefix", "topic", "result"),
    [("replay1.", "site.telemetry", "replay1.site.telemetry"), ("r-", "x", "r-x")],
)
def test_target_topic(prefix: str, topic: str, result: str) -> None:
    assert target_topic(prefix, topic) == result


@pytest.mark.parametrize(("prefix", "message"), [("", "non-empty"), ("bad/", "not a valid")])
def test_bad_prefixes_are_refused(prefix: str, message: str) -> None:
    with pytest.raises(ReplayPlanError, match=message):
        target_topic(prefix, "t")


def test_time_window() -> None:
    window = TimeWindow(100, 200)
    assert [window.contains(t) for t in (99, 100, 200, 201)] == [False, True, True, False]
    assert TimeWindow().contains(0)
    with pytest.raises(ReplayPlanError, match="before"):
        TimeWindow(200, 100)


class _Recorder:
    """An in-memory sink: records (virtual time, topic, offset, timestamp) of every send."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.sent: list[tuple[float, str, int, int | None]] = []
        self.flushed = 0
        self.pushed = 0

    async def send(self, topic: str, record: RawRecord, timestamp_ms: int | None) -> None:
        self.sent.append((self.clock[0], topic, record.offset, timestamp_ms))

    async def push(self) -> None:
        self.pushed += 1

    async def flush(self) -> None:
        self.flushed += 1


def _virtual_run(speed: float | None, keep: bool = True) -> tuple[_Recorder, float]:
    now = [1000.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    sink = _Recorder(now)
    stream = [_rec("t", 0, i, 10_000 + 500 * i) for i in range(5)]  # 2 s of log
    stats = asyncio.run(
        run_replay(
            merge_streams([stream]),
            sink,
            prefix="copy.",
            speed=speed,
            keep_timestamps=keep,
            clock=lambda: now[0],
            sleep=sleep,
        )
    )
    assert stats.records == 5
    assert stats.span_s == 2.0
    return sink, stats.wall_s


@pytest.mark.parametrize(("speed", "wall"), [(1.0, 2.0), (10.0, 0.2), (0.5, 4.0)])
def test_records_are_sent_at_their_scaled_time(speed: float, wall: float) -> None:
    sink, wall_s = _virtual_run(speed)
    assert [t - 1000.0 for t, *_ in sink.sent] == pytest.approx([i * 0.5 / speed for i in range(5)])
    assert wall_s == pytest.approx(wall)
    assert {topic for _t, topic, *_ in sink.sent} == {"copy.t"}
    assert sink.flushed == 1
    assert sink.pushed == 4  # before each wait: what is due has left


def test_max_speed_never_sleeps_and_keeps_original_timestamps() -> None:
    sink, wall_s = _virtual_run(None)
    assert wall_s == 0.0
    assert sink.pushed == 0
    assert [ts for *_, ts in sink.sent] == [10_000 + 500 * i for i in range(5)]
    sink, _ = _virtual_run(None, keep=False)
    assert [ts for *_, ts in sink.sent] == [None] * 5
