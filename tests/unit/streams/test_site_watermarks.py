"""Watermarks in a telemetry partition (``steps.site_partition``): a silent partition's clock
moves where its owner wrote a ``TelemetryWatermark`` into it, so whoever reads the partition
again (a new owner, a worker re-run on a replay) closes the same windows between the same
records and drops the same late records."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.codec import decode, encode
from streams.steps.site_partition import (
    WATERMARK_EVENT,
    PartitionTelemetry,
    close_grid,
    watermark_of,
    watermark_record,
)
from streams.steps.slices import WindowSlice
from streams.steps.telemetry_step import BatchOutcome
from streams.testing.agents import Consumed, telemetry_record

S = 1_000_000
T0 = 1_700_000_000 * S  # a multiple of 10 s
STAMP = T0 + 3600 * S


def tel(site: str, t: int) -> tuple[bytes | None, bytes]:
    return site.encode(), encode("SiteTelemetry", telemetry_record(site, t))


def mark(at: int) -> tuple[bytes | None, bytes]:
    return None, encode(WATERMARK_EVENT, watermark_record("app", 3, at))


def batch(items: Sequence[tuple[bytes | None, bytes]], first: int = 0) -> list[Consumed]:
    return [Consumed("site.telemetry", 3, first + i, key, v) for i, (key, v) in enumerate(items)]


def part(columnar: bool) -> PartitionTelemetry:
    p = PartitionTelemetry(3, (1, 10), grace_s=1.0, idle_s=2.0)
    p.step.columnar_from = 1 if columnar else 10**9
    return p


def windows(out: BatchOutcome[WindowSlice] | list[WindowSlice]) -> list[tuple[int, int, list[str]]]:
    states = out.states if isinstance(out, BatchOutcome) else out
    return [(s.window_s, (s.window_start - T0) // S, list(s.site_ids)) for s in states]


@pytest.mark.parametrize("columnar", [True, False])
def test_a_watermark_closes_the_windows_at_its_place_and_a_record_after_it_is_late(
    columnar: bool,
) -> None:
    p = part(columnar)
    items = [tel("a", T0 + S // 2), tel("b", T0 + S // 2 + 1), mark(T0 + 2 * S)]
    items += [tel("c", T0 + S // 2 + 2), tel("a", T0 + 2 * S + S // 2)]
    out = p.add(batch(items), STAMP)
    # the watermark at T0 + 2 s closes the 1 s window [T0, T0 + 1 s) with a and b; c comes
    # after it: late, dropped and counted; a's second record opens the next window
    assert windows(out) == [(1, 0, ["a", "b"])]
    assert p.late == 1  # c, from its 1 s window (its 10 s window is open)
    assert p.watermarks == 1
    assert p.next_offset == 5


@pytest.mark.parametrize("columnar", [True, False])
def test_the_same_records_without_the_watermark_keep_the_late_one(columnar: bool) -> None:
    p = part(columnar)
    items = [tel("a", T0 + S // 2), tel("b", T0 + S // 2 + 1), tel("c", T0 + S // 2 + 2)]
    items += [tel("a", T0 + 2 * S + S // 2)]
    out = p.add(batch(items), STAMP)
    assert windows(out) == [(1, 0, ["a", "b", "c"])]  # closed by a's record at T0 + 2.5 s
    assert p.late == 0


def test_a_watermark_gives_an_empty_partition_a_clock_and_closes_what_no_record_opened() -> None:
    p = part(True)
    assert p.progress(idle=True).idle
    out = p.add(batch([mark(T0 + 5 * S)]), STAMP)
    assert windows(out) == []
    assert p.clock == T0 + 5 * S
    assert p.data_clock is None  # a watermark is not a record: the estimate ignores it
    progress = p.progress(idle=True)
    assert not progress.idle
    assert progress.clock == T0 + 5 * S
    assert progress.offset == 1
    # windows closed up to T0 + 4 s (1 s: end + grace <= T0 + 5 s) and T0 (10 s)
    assert p.closed() == {1: T0 + 4 * S, 10: T0}
    late = p.add(batch([tel("a", T0 + 3 * S + S // 2)], 1), STAMP)
    assert windows(late) == []
    assert p.late == 1  # the leader may have closed its window with this partition's clock
    p.add(batch([tel("b", T0 + 4 * S + S // 2)], 2), STAMP)
    assert p.late == 1
    assert p.data_clock is None  # b did not move the clock either
    p.add(batch([tel("b", T0 + 6 * S)], 3), STAMP)
    assert p.data_clock == T0 + 6 * S


def test_a_watermark_never_moves_the_clock_back() -> None:
    p = part(True)
    p.add(batch([tel("a", T0 + 5 * S)]), STAMP)
    out = p.add(batch([mark(T0 + 2 * S)], 1), STAMP)
    assert windows(out) == []
    assert p.clock == T0 + 5 * S
    assert p.watermarks == 1


def test_a_watermark_read_again_after_a_restore_closes_nothing_twice() -> None:
    first = part(True)
    items = [tel("a", T0 + S // 2), mark(T0 + 2 * S), tel("a", T0 + 2 * S + S // 2)]
    out = first.add(batch(items), STAMP)
    assert windows(out) == [(1, 0, ["a"])]
    again = part(True)
    again.restore(first.progress(), first.commit_offset())
    redo = again.add(batch(items[again.next_offset :], again.next_offset), STAMP)
    assert windows(redo) == []
    assert again.closed() == first.closed()
    assert again.late == first.late


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (None, encode(WATERMARK_EVENT, watermark_record("app", 1, T0)), T0),
        (b"site", encode(WATERMARK_EVENT, watermark_record("app", 1, T0)), None),  # keyed
        (None, encode("SiteTelemetry", telemetry_record("a", T0)), None),  # another event
        (None, b"\xc3\x01garbage", None),  # not ours: the step makes it a dead letter
        (None, None, None),  # a tombstone
    ],
)
def test_watermark_of(key: bytes | None, value: bytes | None, expected: int | None) -> None:
    assert watermark_of(Consumed("site.telemetry", 1, 0, key, value)) == expected


def test_a_watermark_record_is_a_valid_event_with_a_repeatable_id() -> None:
    one = watermark_record("app", 7, T0)
    assert decode(encode(WATERMARK_EVENT, one)).record["partition"] == 7
    assert watermark_record("app", 7, T0) == one  # written again: the same id
    assert watermark_record("app", 7, T0 + 1)["event_id"] != one["event_id"]
    assert watermark_record("other", 7, T0)["event_id"] != one["event_id"]


@pytest.mark.parametrize(
    ("at", "size", "grace", "expected"),
    [
        (T0 + 2 * S, S, S, T0 + 2 * S),  # on the grid
        (T0 + 2 * S + 999_999, S, S, T0 + 2 * S),
        (T0 + 2 * S - 1, S, S, T0 + S),
        (T0 + 2 * S + S // 2, S, 0, T0 + 2 * S),
        (T0 + 25 * S, 10 * S, S, T0 + 21 * S),
    ],
)
def test_close_grid(at: int, size: int, grace: int, expected: int) -> None:
    assert close_grid(at, size, grace) == expected


@given(st.integers(0, 10**12), st.integers(1, 10**8), st.integers(0, 10**7))
def test_close_grid_is_the_latest_close_instant_not_after(at: int, size: int, grace: int) -> None:
    got = close_grid(at, size, grace)
    assert got <= at
    assert (got - grace) % size == 0
    assert got + size > at
