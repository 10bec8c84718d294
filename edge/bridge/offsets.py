"""Which Kafka offsets may be committed: only those whose command outcome is persisted. Pure.

Commands finish out of order (a STOP overtakes a queued SET_POWER; observations take the OEM
response time), so per partition the committable offset is one past the longest prefix of
started offsets that are all finished. Gaps in the offsets (compaction, transaction markers)
do not matter: only offsets that were started are waited for. After a crash the idempotency
store makes the redelivered, uncommitted ones harmless.
"""

from __future__ import annotations

from collections import deque


class OffsetError(ValueError):
    """Offsets started out of order, or finished without being started (a wiring bug)."""


class OffsetTracker:
    def __init__(self) -> None:
        self._started: dict[int, deque[int]] = {}
        self._done: dict[int, set[int]] = {}
        self._commit: dict[int, int] = {}

    def started(self, partition: int, offset: int) -> None:
        q = self._started.setdefault(partition, deque())
        if q and offset <= q[-1]:
            raise OffsetError(f"partition {partition}: offset {offset} after {q[-1]}")
        if partition in self._commit and offset < self._commit[partition]:
            raise OffsetError(f"partition {partition}: offset {offset} is already committable")
        q.append(offset)
        self._done.setdefault(partition, set())

    def finished(self, partition: int, offset: int) -> None:
        if offset not in self._started.get(partition, ()):
            raise OffsetError(f"offset {offset} of partition {partition} was never started")
        self._done[partition].add(offset)

    def committable(self) -> dict[int, int]:
        """Partition -> next offset to commit, for the partitions that advanced since last call."""
        out: dict[int, int] = {}
        for p, q in self._started.items():
            done = self._done[p]
            last = None
            while q and q[0] in done:
                last = q.popleft()
                done.discard(last)
            if last is not None:
                self._commit[p] = out[p] = last + 1
        return out

    def pending(self) -> int:
        return sum(len(q) for q in self._started.values())
