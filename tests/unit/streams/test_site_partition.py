"""One telemetry partition on its owner (``steps.site_partition``) and its slices on the wire
(``steps.slices``): per-partition stream time, the idle bound, restart from the low-water
offset, limits as of an instant."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from contract.codec import encode
from contract.errors import InvalidRecordError
from streams.steps import slices
from streams.steps.fleet_aggregation import SiteSample
from streams.steps.site_partition import PartitionTelemetry
from streams.testing.agents import Consumed, consumed, telemetry_record

S = 1_000_000
T0 = 1_700_000_000 * S  # a multiple of 10 s
STAMP = T0 + 3600 * S


def second(sites: Sequence[str], k: int, *, max_kw: float = 10.0) -> list[tuple[bytes, bytes]]:
    """Telemetry of ``sites`` at T0 + k s + 0.3 s."""
    t = T0 + k * S + 3 * S // 10
    return [
        (
            s.encode(),
            encode("SiteTelemetry", telemetry_record(s, t, battery_power_kw=k, max_kw=max_kw)),
        )
        for s in sites
    ]


def records(messages: list[tuple[bytes, bytes]], first: int = 0) -> list[Consumed]:
    return consumed(messages, partition=3, first_offset=first)


def part(columnar: bool = True) -> PartitionTelemetry:
    p = PartitionTelemetry(3, (1, 10), grace_s=1.0, idle_s=2.0)
    p.step.columnar_from = 1 if columnar else 10**9
    return p


@pytest.mark.parametrize("columnar", [True, False])
def test_a_partition_closes_its_windows_on_its_own_clock(columnar: bool) -> None:
    p = part(columnar)
    msgs = [m for k in range(4) for m in second(["a", "b"], k)]
    out = p.add(records(msgs), STAMP)
    # clock T0 + 3.3 s, grace 1 s: the 1 s windows 0 and 1 closed
    assert [(s.window_s, s.window_start) for s in out.states] == [(1, T0), (1, T0 + S)]
    first = out.states[0]
    assert list(first.site_ids) == ["a", "b"]
    assert first.max_discharge_kw.tolist() == [10.0, 10.0]
    assert p.clock == T0 + 3 * S + 3 * S // 10
    assert p.closed() == {1: T0 + 2 * S}
    assert p.late == 0
    # a record for a closed window of this partition is late (and only that)
    old = second(["c"], 0)
    more = p.add(records(old, first=len(msgs)), STAMP)
    assert more.states == []
    assert p.late == 1


def test_the_columnar_and_the_record_paths_give_the_same_slices() -> None:
    msgs = [m for k in range(13) for m in second(["a", "b", "c"], k)]
    fast, slow = part(True), part(False)
    assert fast.add(records(msgs), STAMP).states == slow.add(records(msgs), STAMP).states


def test_a_silent_partition_follows_the_clock_after_idle_s() -> None:
    p = part()
    p.add(records(second(["a"], 0)), STAMP)
    clock = p.clock
    assert clock is not None
    assert p.advance(clock + 2 * S) == []  # silent for idle_s: not yet past anything
    closed = p.advance(clock + 13 * S)  # the clock moves to clock + 11 s
    assert [(s.window_s, s.window_start) for s in closed] == [(1, T0), (10, T0)]
    assert p.clock == clock + 11 * S
    assert p.advance(clock) == []  # never backwards


def test_a_partition_without_a_record_has_no_clock_and_says_it_is_idle() -> None:
    p = part()
    assert p.advance(T0) == []
    progress = p.progress(idle=True)
    assert progress.clock is None
    assert progress.idle


def test_the_commit_offset_is_the_first_record_an_open_window_may_need() -> None:
    p = part()
    first = second(["a"], 0)  # offset 0
    p.add(records(first), STAMP)
    assert p.commit_offset() == 0  # windows [0, 1) and [0, 10) are open
    later = [m for k in range(1, 12) for m in second(["a"], k)]  # offsets 1..11
    p.add(records(later, first=1), STAMP)
    # the 10 s window [0, 10) closed at 11.3 s; [10, 20) opened at offset 10, whose batch
    # began at offset 1
    assert p.commit_offset() == 1
    p.add(records(second(["a"], 12), first=12), STAMP)
    assert p.commit_offset() == 1
    p.advance(T0 + 40 * S)  # every window closed: nothing to re-read
    assert p.commit_offset() == 13


def test_a_new_owner_resumes_without_emitting_a_closed_window_again() -> None:
    msgs = [m for k in range(15) for m in second(["a", "b"], k)]
    whole = part()
    expected = whole.add(records(msgs), STAMP).states

    before = part()
    emitted = before.add(records(msgs[:20]), STAMP).states  # seconds 0..9
    committed, progress = before.commit_offset(), before.progress()
    after = part()
    after.restore(progress, committed)
    again = after.add(records(msgs[committed:], first=committed), STAMP).states
    assert emitted + again == expected  # each window once, the same rows
    assert after.late == 0
    assert after.replayed == progress.offset - committed


def test_a_restored_partition_reports_the_previous_owners_clock_until_it_passes_it() -> None:
    before = part()
    before.add(records([m for k in range(6) for m in second(["a", "b"], k)]), STAMP)
    progress = before.progress()
    assert progress.clock is not None
    after = part()
    after.restore(progress, before.commit_offset())
    assert after.clock is None
    mine = after.progress(idle=True)
    assert mine.clock == progress.clock  # not None: the leader keeps waiting for it
    assert mine.idle is False


def test_limits_are_looked_up_as_of_an_instant() -> None:
    p = part()
    p.add(records(second(["a"], 0, max_kw=10.0)), STAMP)
    p.add(records(second(["a"], 1, max_kw=4.0), first=1), STAMP)
    p.add(records(second(["a"], 2, max_kw=4.0), first=2), STAMP)
    p.add(records(second(["a"], 3, max_kw=4.0), first=3), STAMP)
    # slices close at end + grace: window [0, 1) at T0 + 2 s, [1, 2) at T0 + 3 s
    limits = p.limits_at("a", T0 + 2 * S + 1)
    assert limits is not None
    assert limits.max_discharge_kw == 10.0
    limits = p.limits_at("a", T0 + 3 * S)
    assert limits is not None
    assert limits.max_discharge_kw == 4.0
    early = p.limits_at("a", T0)  # before anything: the oldest known
    assert early is not None
    assert early.max_discharge_kw == 10.0
    assert p.limits_at("nobody", T0) is None


def test_slices_round_trip_on_the_wire() -> None:
    p = part()
    out = p.add(records([m for k in range(3) for m in second(["a", "b"], k)]), STAMP)
    for s in out.states:
        record = slices.SliceRecord(p.progress(), s)
        back = slices.decode(slices.encode(record))
        assert back == record
    bare = slices.SliceRecord(p.progress(idle=True))
    assert slices.decode(slices.encode(bare)) == bare


SAMPLE = SiteSample(T0, 1.0, 2.0, 3.0, False, "huawei", 50.0, None, None, 10.0, 10.0)
GOOD = slices.SliceRecord(
    slices.PartitionProgress(1, T0, {1: T0}, 5),
    slices.slice_of_samples(1, 1, T0, [("a", SAMPLE), ("b", SAMPLE._replace(stack=(1.0,) * 6))]),
)


def _header(**changes: object) -> bytes:
    """The good record with its JSON header changed."""
    raw = slices.encode(GOOD)
    length = int.from_bytes(raw[4:8], "big")
    header = json.loads(raw[8 : 8 + length]) | changes
    text = json.dumps(header).encode()
    return raw[:4] + len(text).to_bytes(4, "big") + text + raw[8 + length :]


def _columns(cut: int = 0, extra: bytes = b"") -> bytes:
    raw = slices.encode(GOOD)
    return (raw[:-cut] if cut else raw) + extra


def test_a_slice_with_stacks_round_trips() -> None:
    back = slices.decode(slices.encode(GOOD))
    assert back == GOOD
    assert back.slice is not None
    assert back.slice.rows()[1][1].stack == (1.0,) * 6
    assert back.slice.rows()[0][1].baseline_kw is None


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (None, "<value>"),
        (b"not a slice", "magic"),
        (b"FHSL\x00\x00\x00\x09{}", "header"),
        (slices.MAGIC + (5).to_bytes(4, "big") + b"[1,2]", "<header>"),
        (_header(v=1), "v"),
        (_header(p="1"), "p"),
        (_header(closed=[]), "closed"),
        (_header(closed={"x": 1}), "closed"),
        (_header(idle=0), "idle"),
        (_header(clock=1.5), "clock"),
        (_header(w=0), "w"),
        (_header(sites=["a", ""]), "sites"),
        (_header(oems=[]), "oem"),
        (_header(stack="yes"), "stack"),
        (_columns(cut=8), "<columns>"),
        (_columns(extra=b"\x00"), "<columns>"),
    ],
)
def test_a_record_that_is_not_a_slice_is_refused_with_its_field(
    value: bytes | None, field: str
) -> None:
    with pytest.raises(InvalidRecordError, match=field):
        slices.decode(value)
