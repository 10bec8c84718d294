"""The leader's event-time merge (``steps.event_time``): which record comes next, and when."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.steps.event_time import EventMerge, MergeError, SourceKind


class Wall:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def drain(merge: EventMerge) -> list[object]:
    out = []
    while (item := merge.pop()) is not None:
        out.append(item[1])
    return out


def test_the_smallest_timestamp_goes_first_and_ties_go_by_rank() -> None:
    merge = EventMerge(0, Wall())
    merge.add_source("b", 1, SourceKind.EVENTS)
    merge.add_source("a", 0, SourceKind.EVENTS)
    for key, ts, item in [("b", 5, "b5"), ("b", 9, "b9"), ("a", 5, "a5"), ("a", 7, "a7")]:
        merge.push(key, ts, item)
    # a source is known up to its buffered head: a5, b5, a7 are safe; then "a" is empty and
    # has not said it is caught up: b9 waits for it
    assert drain(merge) == ["a5", "b5", "a7"]
    assert merge.stream_time == 7
    merge.fetched("a", caught_up=True)
    merge.fetched("b", caught_up=True)
    assert drain(merge) == ["b9"]


def test_an_empty_source_with_lag_blocks_the_merge() -> None:
    merge = EventMerge(0, Wall())
    merge.add_source("slices", 0, SourceKind.PROGRESS)
    merge.add_source("orders", 1, SourceKind.EVENTS)
    merge.set_progress("slices", 100)
    merge.push("slices", 50, "s50")
    merge.fetched("orders", caught_up=False)
    assert merge.pop() is None  # an order before 50 may still be on the broker
    assert merge.safe_time() is None
    merge.push("orders", 40, "o40")
    assert drain(merge) == ["o40"]  # then "orders" is empty again, and still lagging
    merge.fetched("orders", caught_up=True)
    assert drain(merge) == ["s50"]


def test_a_caught_up_event_source_bounds_by_the_estimated_event_time_less_hold() -> None:
    wall = Wall()
    merge = EventMerge(500, wall)
    merge.add_source("slices", 0, SourceKind.PROGRESS)
    merge.add_source("orders", 1, SourceKind.EVENTS)
    merge.fetched("orders", caught_up=True)
    merge.push("slices", 1_000, "s1000")
    merge.set_progress("slices", 1_000)
    # estimate: the newest progress (1,000) read just now; an order may still come until 500
    assert merge.pop() is None
    assert merge.safe_time() == 500
    wall.now = 600  # wall time passes: the estimate moves on (1,600), the bound to 1,100
    assert drain(merge) == ["s1000"]
    assert merge.safe_time() == 1_000  # the slices' owner is at 1,000


def test_a_progress_source_is_known_up_to_its_owners_clock() -> None:
    merge = EventMerge(0, Wall())
    merge.add_source(0, 0, SourceKind.PROGRESS)
    merge.add_source(1, 0, SourceKind.PROGRESS)
    merge.push(0, 20, "p0-20")
    merge.set_progress(0, 22)  # a slice carries its owner's clock
    assert merge.pop() is None  # partition 1 has said nothing yet
    merge.set_progress(1, 10)
    assert merge.pop() is None  # partition 1 may still close a window at 11..20
    merge.set_progress(1, 20)
    assert drain(merge) == ["p0-20"]
    assert merge.safe_time() == 20


def test_an_idle_partition_without_a_clock_is_not_waited_for() -> None:
    merge = EventMerge(0, Wall())
    merge.add_source(0, 0, SourceKind.PROGRESS)
    merge.add_source(1, 0, SourceKind.PROGRESS)
    merge.push(0, 20, "p0-20")
    merge.set_progress(0, 25)
    merge.set_progress(1, None, idle=True)
    assert drain(merge) == ["p0-20"]
    merge.set_progress(1, 30)  # it reads something after all: waited for again
    merge.push(0, 40, "p0-40")
    merge.set_progress(0, 45)
    assert merge.pop() is None
    merge.set_progress(1, 40)
    assert drain(merge) == ["p0-40"]


def test_a_record_behind_the_stream_is_taken_at_once_and_counted_late() -> None:
    wall = Wall()
    merge = EventMerge(0, wall)
    merge.add_source("slices", 0, SourceKind.PROGRESS)
    merge.add_source("orders", 1, SourceKind.EVENTS)
    merge.fetched("orders", caught_up=True)
    merge.set_progress("slices", 100)
    merge.push("slices", 100, "s100")
    assert drain(merge) == ["s100"]
    merge.push("orders", 60, "late order")
    assert drain(merge) == ["late order"]
    assert merge.late == 1
    assert merge.stream_time == 100


def test_sources_must_be_added_once_and_known() -> None:
    merge = EventMerge(0, Wall())
    merge.add_source("a", 0, SourceKind.EVENTS)
    with pytest.raises(ValueError, match="twice"):
        merge.add_source("a", 0, SourceKind.EVENTS)
    with pytest.raises(MergeError):
        merge.push("b", 1, "x")
    with pytest.raises(ValueError, match="hold"):
        EventMerge(-1, Wall())


# one source's records: (timestamp, ...) in offset order; progress sources nondecreasing
streams = st.lists(
    st.lists(st.integers(0, 50), min_size=0, max_size=12).map(sorted), min_size=1, max_size=4
)


@settings(max_examples=80, deadline=None)
@given(streams, st.lists(st.integers(0, 3), min_size=1, max_size=40), st.randoms())
def test_chunked_arrival_gives_the_order_of_a_full_read(
    sources: list[list[int]], pulls: list[int], rnd: object
) -> None:
    """However the records arrive (a few from one partition, then another), the merge hands
    them out in the order it gives when everything is already there."""
    reference = EventMerge(0, Wall())
    chunked = EventMerge(0, Wall())
    for merge in (reference, chunked):
        for k in range(len(sources)):
            merge.add_source(k, 0, SourceKind.PROGRESS)
    for k, records in enumerate(sources):
        for i, ts in enumerate(records):
            reference.push(k, ts, (k, i))
        reference.set_progress(k, 100)  # every owner past every record
    expected = drain(reference)
    assert len(expected) == sum(map(len, sources))

    got: list[object] = []
    next_of = [0] * len(sources)
    for pull in [*pulls, *range(len(sources))]:
        k = pull % len(sources)
        records = sources[k]
        take = len(records) if pull == k and next_of[k] else min(len(records), next_of[k] + 2)
        for i in range(next_of[k], take):
            chunked.push(k, records[i], (k, i))
        next_of[k] = max(next_of[k], take)
        # the owner's clock: the last record handed over (all of them when done)
        if next_of[k]:
            chunked.set_progress(
                k, records[next_of[k] - 1] - (1 if next_of[k] < len(records) else 0)
            )
        elif not records:
            chunked.set_progress(k, None, idle=True)
        got += drain(chunked)
    for k, records in enumerate(sources):
        for i in range(next_of[k], len(records)):
            chunked.push(k, records[i], (k, i))
        chunked.set_progress(k, 100)
    got += drain(chunked)
    assert got == expected
    assert chunked.late == 0


def test_a_progress_source_that_had_a_bound_is_never_taken_as_idle() -> None:
    merge = EventMerge(0, lambda: 0)
    merge.add_source("p0", 0, SourceKind.PROGRESS)
    merge.add_source("p1", 0, SourceKind.PROGRESS)
    merge.set_progress("p0", 100)
    merge.set_progress("p1", None, idle=True)  # never read: not waited for
    merge.push("p0", 50, "x")
    assert merge.pop() == (50, "x")
    merge.set_progress("p1", 60)
    merge.set_progress("p1", None, idle=True)  # a new owner that has not read it yet
    merge.push("p0", 70, "y")
    assert merge.pop() is None  # p1 is known only up to 60
    merge.set_progress("p1", 80)
    assert merge.pop() == (70, "y")


def test_an_idle_source_short_of_its_inputs_end_is_waited_for() -> None:
    merge = EventMerge(0, lambda: 0)
    merge.add_source("p0", 0, SourceKind.PROGRESS)
    merge.add_source("p1", 0, SourceKind.PROGRESS)
    merge.set_progress("p1", None, idle=True, offset=10)  # said idle at offset 10
    merge.set_end("p1", 10)
    merge.set_progress("p0", 100, offset=500)
    merge.push("p0", 50, "x")
    assert merge.pop() == (50, "x")  # p1 read to its end: idle
    merge.set_end("p1", 5_010)  # a backlog came after it said so
    merge.push("p0", 60, "y")
    assert merge.pop() is None  # its slices are still to come
    merge.set_progress("p1", 70, offset=5_010)  # its owner read it
    assert merge.pop() == (60, "y")
