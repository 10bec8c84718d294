"""Read coalescing: table-driven cases plus a property check against the exact minimum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.hal.blocks import Block, Span, minimum_blocks, plan_blocks

H = "holding"
CASES = [
    ("one point", [Span(H, 10, 2)], 64, 8, [Block(H, 10, 2)]),
    ("adjacent merge", [Span(H, 10, 2), Span(H, 12, 1)], 64, 8, [Block(H, 10, 3)]),
    ("small gap merges", [Span(H, 10, 1), Span(H, 15, 1)], 64, 8, [Block(H, 10, 6)]),
    (
        "large gap splits",
        [Span(H, 10, 1), Span(H, 30, 1)],
        64,
        8,
        [Block(H, 10, 1), Block(H, 30, 1)],
    ),
    ("max length splits", [Span(H, 0, 2), Span(H, 3, 2)], 4, 8, [Block(H, 0, 2), Block(H, 3, 2)]),
    (
        "tables never mix",
        [Span(H, 5, 1), Span("input", 5, 1)],
        64,
        8,
        [Block(H, 5, 1), Block("input", 5, 1)],
    ),
    ("duplicates collapse", [Span(H, 7, 1), Span(H, 7, 1)], 64, 8, [Block(H, 7, 1)]),
    (
        "overlapping span closes a gap",
        [Span(H, 81, 3), Span(H, 82, 1), Span(H, 84, 1)],
        4,
        0,
        [Block(H, 81, 4)],
    ),
]


def test_minimum_counts_a_gap_closed_by_an_overlapping_span() -> None:
    # [82, 83) and [84, 85) leave a gap, but [81, 84) covers it: one block, as the greedy finds.
    spans = [Span(H, 81, 3), Span(H, 82, 1), Span(H, 84, 1)]
    assert minimum_blocks(spans, 4, 0) == 1
    assert minimum_blocks(spans, 3, 0) == 2


@pytest.mark.parametrize(
    ("label", "spans", "max_regs", "gap", "want"), CASES, ids=[c[0] for c in CASES]
)
def test_plan_blocks(
    label: str, spans: list[Span], max_regs: int, gap: int, want: list[Block]
) -> None:
    assert sorted(plan_blocks(spans, max_regs, gap), key=lambda b: (b.table, b.address)) == sorted(
        want, key=lambda b: (b.table, b.address)
    ), label


def test_span_longer_than_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="longer"):
        plan_blocks([Span(H, 0, 20)], 10, 0)


@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 4)), min_size=1, max_size=25),
    st.integers(4, 40),
    st.integers(0, 10),
)
def test_greedy_is_minimal_and_covers_every_span(
    raw: list[tuple[int, int]], max_regs: int, gap: int
) -> None:
    spans = [Span(H, a, c) for a, c in raw]
    blocks = plan_blocks(spans, max_regs, gap)
    assert len(blocks) == minimum_blocks(spans, max_regs, gap)
    for s in spans:
        assert any(b.address <= s.address and s.end <= b.address + b.count for b in blocks)
    assert all(b.count <= max_regs for b in blocks)
