"""Read coalescing, pure: the fewest contiguous block reads covering a set of points.

A block never exceeds the OEM's maximum registers per read, never spans a gap of more than
`max_gap` unwanted registers (unmapped registers can answer with an exception), never mixes
tables and never splits a point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Span:
    table: str
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count  # exclusive


@dataclass(frozen=True)
class Block:
    table: str
    address: int
    count: int


def _fits(spans: list[Span], max_registers: int, max_gap: int) -> bool:
    if len({s.table for s in spans}) != 1:
        return False
    end = spans[0].end
    for s in spans[1:]:
        if s.address - end > max_gap:
            return False
        end = max(end, s.end)
    return end - spans[0].address <= max_registers


def _normalise(spans: Iterable[Span]) -> list[Span]:
    return sorted(set(spans))


def plan_blocks(spans: Iterable[Span], max_registers: int, max_gap: int) -> list[Block]:
    """Greedy left-to-right packing; optimal for this interval problem (see minimum_blocks)."""
    ordered = _normalise(spans)
    blocks: list[Block] = []
    current: list[Span] = []
    for span in ordered:
        if span.count > max_registers:
            raise ValueError(f"span {span} longer than {max_registers} registers")
        if current and _fits([*current, span], max_registers, max_gap):
            current.append(span)
            continue
        if current:
            blocks.append(_block(current))
        current = [span]
    if current:
        blocks.append(_block(current))
    return blocks


def _block(spans: list[Span]) -> Block:
    end = max(s.end for s in spans)
    return Block(spans[0].table, spans[0].address, end - spans[0].address)


def minimum_blocks(spans: Iterable[Span], max_registers: int, max_gap: int) -> int:
    """Exact minimum number of blocks (dynamic programme over sorted spans), for benchmarks."""
    ordered = _normalise(spans)
    n = len(ordered)
    best = [0] + [n + 1] * n
    for j in range(1, n + 1):
        end = 0
        for i in range(j - 1, -1, -1):
            end = max(end, ordered[i].end)
            if end - ordered[i].address > max_registers or ordered[i].table != ordered[j - 1].table:
                break  # only a wider range or a table change from here on: never fits again
            # A gap that breaks ordered[i:j] can be closed by a longer span further left
            # (spans overlap), so a gap failure is no reason to stop.
            if _fits(ordered[i:j], max_registers, max_gap):
                best[j] = min(best[j], best[i] + 1)
    return best[n]
