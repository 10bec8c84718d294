"""The bookkeeping of per-record acknowledged delivery (pure: no Kafka, no asyncio).

:class:`DeliveryLedger` keeps, per *lane* (one topic-partition), the records waiting to be
sent, in their order, and the one batch on the wire. The async sender
(:mod:`contract.kafka.delivery`) asks it what to send next and tells it what happened:

- :meth:`~DeliveryLedger.start` moves the first ``n`` waiting records of a lane onto the
  wire (one batch per lane at a time, so a lane's records reach the log in their order);
- :meth:`~DeliveryLedger.acked`: the broker acknowledged that batch: its records are done,
  each exactly once, and the lane's next batch may go;
- :meth:`~DeliveryLedger.failed`: the batch failed (no leader within the timeout, a
  non-retriable error): only its records go back to the front of the lane, in their order,
  and the lane waits an exponential backoff; nothing already acknowledged is sent again and
  no other lane is held up;
- :meth:`~DeliveryLedger.reject`: the first waiting record can never be sent (larger than a
  batch): it leaves the ledger and the caller reports it.

Records are opaque tokens; the ledger never copies or reorders them within a lane.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

L = TypeVar("L", bound=Hashable)
T = TypeVar("T")


class LedgerError(RuntimeError):
    """A call out of protocol (a bug in the sender, never bad input)."""


@dataclass
class _Lane(Generic[T]):
    waiting: deque[T] = field(default_factory=deque)
    on_wire: list[T] = field(default_factory=list)
    retry_at: float = 0.0
    failures: int = 0  # consecutive failed batches


@dataclass(frozen=True)
class LaneState:
    """What one lane holds: counts and when it may send again."""

    waiting: int
    on_wire: int
    retry_at: float
    failures: int


class DeliveryLedger(Generic[L, T]):
    """Per-lane queues of records to deliver, one batch on the wire per lane (module doc).

    ``backoff_s`` is the wait after a lane's first failed batch, doubled per consecutive
    failure up to ``max_backoff_s``; an acknowledged batch resets it.
    """

    def __init__(self, backoff_s: float = 0.1, max_backoff_s: float = 5.0) -> None:
        if backoff_s <= 0 or max_backoff_s < backoff_s:
            raise LedgerError(f"backoff {backoff_s} s, max {max_backoff_s} s: need 0 < b <= max")
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._lanes: dict[L, _Lane[T]] = {}
        self.acked_count = 0
        self.failed_batches = 0
        self.rejected_count = 0

    def _lane(self, lane: L) -> _Lane[T]:
        found = self._lanes.get(lane)
        if found is None:
            found = self._lanes[lane] = _Lane()
        return found

    def add(self, lane: L, item: T) -> None:
        """Queue ``item`` at the end of ``lane``."""
        self._lane(lane).waiting.append(item)

    def lanes(self) -> list[L]:
        return list(self._lanes)

    def state(self, lane: L) -> LaneState:
        found = self._lanes.get(lane)
        if found is None:
            return LaneState(0, 0, 0.0, 0)
        return LaneState(len(found.waiting), len(found.on_wire), found.retry_at, found.failures)

    def ready(self, lane: L, now: float) -> bool:
        """True when ``lane`` has records waiting, none on the wire, and no backoff left."""
        found = self._lanes.get(lane)
        return (
            found is not None
            and bool(found.waiting)
            and not found.on_wire
            and now >= found.retry_at
        )

    def peek(self, lane: L, limit: int) -> list[T]:
        """The first ``limit`` waiting records of ``lane`` (not moved)."""
        found = self._lanes.get(lane)
        if found is None:
            return []
        out: list[T] = []
        for item in found.waiting:
            if len(out) >= limit:
                break
            out.append(item)
        return out

    def start(self, lane: L, count: int) -> list[T]:
        """Put the first ``count`` waiting records of ``lane`` on the wire (one batch)."""
        found = self._lanes.get(lane)
        if found is None or found.on_wire:
            raise LedgerError(f"lane {lane!r}: a batch is already on the wire (or no lane)")
        if not 1 <= count <= len(found.waiting):
            raise LedgerError(f"lane {lane!r}: cannot start {count} of {len(found.waiting)}")
        found.on_wire = [found.waiting.popleft() for _ in range(count)]
        return list(found.on_wire)

    def acked(self, lane: L) -> list[T]:
        """The lane's batch was acknowledged: its records, now done (each exactly once)."""
        found = self._lanes.get(lane)
        if found is None or not found.on_wire:
            raise LedgerError(f"lane {lane!r}: no batch on the wire to acknowledge")
        done, found.on_wire = found.on_wire, []
        found.failures = 0
        found.retry_at = 0.0
        self.acked_count += len(done)
        return done

    def failed(self, lane: L, now: float) -> float:
        """The lane's batch failed: its records back to the front, in order; returns the
        time the lane may send again."""
        found = self._lanes.get(lane)
        if found is None or not found.on_wire:
            raise LedgerError(f"lane {lane!r}: no batch on the wire that could fail")
        found.waiting.extendleft(reversed(found.on_wire))
        found.on_wire = []
        found.failures += 1
        self.failed_batches += 1
        wait = min(self.max_backoff_s, self.backoff_s * 2 ** (found.failures - 1))
        found.retry_at = now + wait
        return found.retry_at

    def reject(self, lane: L) -> T:
        """Take the first waiting record of ``lane`` out for good (it can never be sent)."""
        found = self._lanes.get(lane)
        if found is None or not found.waiting or found.on_wire:
            raise LedgerError(f"lane {lane!r}: nothing waiting to reject")
        self.rejected_count += 1
        found.retry_at = 0.0  # the next records owe the refused one no wait
        return found.waiting.popleft()

    def pending(self) -> int:
        """Records not acknowledged yet (waiting or on the wire), over every lane."""
        return sum(len(x.waiting) + len(x.on_wire) for x in self._lanes.values())

    def unacked(self) -> Iterator[tuple[L, T]]:
        """Every record not acknowledged yet, lane by lane, in order (on the wire first)."""
        for lane, found in self._lanes.items():
            for item in found.on_wire:
                yield lane, item
            for item in found.waiting:
                yield lane, item
