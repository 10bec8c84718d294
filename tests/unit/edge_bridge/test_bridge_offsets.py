"""Offset tracker: commit only a finished prefix, whatever order outcomes arrive in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.bridge.offsets import OffsetError, OffsetTracker


def test_out_of_order_finish() -> None:
    t = OffsetTracker()
    for o in (10, 11, 13):  # 12 was compacted away: never started, never waited for
        t.started(0, o)
    t.finished(0, 11)
    assert t.committable() == {}
    t.finished(0, 10)
    assert t.committable() == {0: 12}
    assert t.committable() == {}
    t.finished(0, 13)
    assert t.committable() == {0: 14}
    assert t.pending() == 0


def _run(t: OffsetTracker, steps: list[tuple[str, int, int]]) -> None:
    for op, p, o in steps:
        if op == "s":
            t.started(p, o)
        elif op == "f":
            t.finished(p, o)
        else:
            t.committable()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([("s", 0, 5), ("s", 0, 5)], "after"),
        ([("f", 0, 1)], "never started"),
        ([("s", 0, 5), ("f", 0, 5), ("c", 0, 0), ("s", 0, 3)], "already committable"),
    ],
)
def test_misuse(steps: list[tuple[str, int, int]], message: str) -> None:
    with pytest.raises(OffsetError, match=message):
        _run(OffsetTracker(), steps)


@given(st.permutations(list(range(20))), st.integers(0, 20))
def test_commit_never_passes_an_unfinished_offset(order: list[int], k: int) -> None:
    t = OffsetTracker()
    for o in range(20):
        t.started(1, o)
    finished = order[:k]
    for o in finished:
        t.finished(1, o)
    got = t.committable().get(1)
    unfinished = sorted(set(range(20)) - set(finished))
    expected = unfinished[0] if unfinished else 20
    assert (got or 0) == expected
