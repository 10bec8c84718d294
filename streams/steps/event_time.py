"""Inputs aligned by event time: the leader's merge of many topic-partitions (pure).

The leader reads several inputs: every partition's window slices (``slices``), the fleet
requests (activations, fleet setpoints, reserve assignments) and the command results. Its
decisions must be the same whether it reads them live or as a backlog (a new leader, a
restart, a replay): an activation must be split over the availability of the sites as of
its event time, not over whatever part of a backlog happened to be fetched first. So the
inputs are merged by event time, as Kafka Streams merges a task's partitions: the next
record is always the buffered head with the smallest timestamp (ties: the lower ``rank``,
then the source's order, then arrival), and it is taken only when no source could still
bring an earlier one:

- a source with buffered records is known up to its head;
- an empty source that is not caught up (the broker holds more than was fetched: Kafka's
  lag) blocks the merge until its records come (``fetched(caught_up=False)``);
- an empty *progress* source (a partition's slices) is known up to its owner's stream time
  (``set_progress``): every slice still to come closes after it; a partition whose owner
  reports it idle without any stream time (nothing ever read) is not waited for, unless it
  had a stream time before (a new owner that has not read it yet is not idle) or its input
  partition's end (``set_end``, asked of the broker after the records in hand were
  written) is past what the owner had read when it said so: a backlog committed after an
  owner said idle holds the merge until that owner reports on it;
- an empty, caught-up *event* source (activations, ...) is bounded by the current event
  time less ``hold``: a record of it is expected no later than ``hold`` after its event
  time (Kafka Streams' ``max.task.idle.ms``, here in event time). The current event time is
  estimated as the newest timestamp read from the progress sources (all sources when there
  are none) plus the wall time since it was read: live, that is about now; in a backlog
  the wall time since is short, so the bound stays near the backlog's own time; in a
  paced replay it follows the replay's time.

A record that arrives after the merge moved past its timestamp (a fleet request more than
``hold`` late, live) is still taken, at once, and counted in ``late``: the one way a live
run and a replay of its log can differ, and it is logged.

``safe_time()`` is the largest instant at which every future record is known to be later:
event-time timers (the allocator's re-split, the leader's window closes) fire up to it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class SourceKind(Enum):
    """How an empty source bounds the merge (module doc)."""

    EVENTS = "events"
    PROGRESS = "progress"


@dataclass
class _Source:
    key: Hashable
    rank: int
    order: int
    kind: SourceKind
    buffer: deque[tuple[int, int, Any]] = field(default_factory=deque)
    caught_up: bool = False
    bound: int | None = None  # PROGRESS: every later record is after it (None: unknown)
    idle: bool = False  # PROGRESS without a clock: not waited for (see ``offset``, ``end``)
    offset: int | None = None  # PROGRESS: the owner read its input partition up to here
    end: int | None = None  # PROGRESS: the input partition's end, as the merge last heard
    newest: int | None = None
    seen_at: int = 0  # wall micros when ``newest`` was read


class MergeError(KeyError):
    """A source that was not added."""


class EventMerge:
    """The merge (module doc). ``hold_us``: how late an event source's record may come;
    ``wall``: a monotonic clock in microseconds (processing time, for the estimate only)."""

    def __init__(self, hold_us: int, wall: Callable[[], int]) -> None:
        if hold_us < 0:
            raise ValueError(f"hold_us must be >= 0, got {hold_us}")
        self.hold = hold_us
        self.wall = wall
        self._sources: dict[Hashable, _Source] = {}
        self._seq = 0
        self.stream_time: int | None = None  #: the newest timestamp taken
        self.late = 0  #: records taken after the merge had passed their timestamp
        self.taken = 0

    # ------------------------------------------------------------------ sources
    def add_source(self, key: Hashable, rank: int, kind: SourceKind) -> None:
        if key in self._sources:
            raise ValueError(f"source {key!r} added twice")
        self._sources[key] = _Source(key, rank, len(self._sources), kind)

    def _source(self, key: Hashable) -> _Source:
        try:
            return self._sources[key]
        except KeyError:
            raise MergeError(key) from None

    def push(self, key: Hashable, ts: int, item: Any) -> None:
        """Buffer one record of ``key`` (in the source's offset order)."""
        source = self._source(key)
        self._seq += 1
        source.buffer.append((ts, self._seq, item))
        self._saw(source, ts)

    def _saw(self, source: _Source, ts: int) -> None:
        if source.newest is None or ts > source.newest:
            source.newest = ts
            source.seen_at = self.wall()

    def fetched(self, key: Hashable, *, caught_up: bool) -> None:
        """After a fetch: whether the source holds nothing more on the broker."""
        self._source(key).caught_up = caught_up

    def set_progress(
        self, key: Hashable, bound: int | None, *, idle: bool = False, offset: int | None = None
    ) -> None:
        """A progress source's owner is at ``bound`` (its records to come are later);
        ``idle``: it has no stream time and is not to be waited for; ``offset``: how far the
        owner read its input (with :meth:`set_end`: idle only once read to the end)."""
        source = self._source(key)
        if offset is not None:
            source.offset = offset
        if bound is not None and (source.bound is None or bound > source.bound):
            source.bound = bound
            self._saw(source, bound)
        # a source that once had a bound stays waited for (its owner moved, say)
        source.idle = idle and bound is None and source.bound is None

    def set_end(self, key: Hashable, end: int) -> None:
        """The end of a progress source's input partition, as just asked of the broker: an
        idle owner whose ``offset`` is short of it has records to read (a backlog that came
        after it said idle), so its slices are still to come and it is waited for."""
        self._source(key).end = end

    def buffered(self) -> int:
        return sum(len(s.buffer) for s in self._sources.values())

    # ------------------------------------------------------------------ time
    def estimate(self) -> int | None:
        """The current event time as the merge sees it (module doc)."""
        now = self.wall()
        progress = [s for s in self._sources.values() if s.kind is SourceKind.PROGRESS]
        pool = [s for s in progress if s.newest is not None] or [
            s for s in self._sources.values() if s.newest is not None
        ]
        if not pool:
            return None
        return max(s.newest + max(now - s.seen_at, 0) for s in pool if s.newest is not None)

    def _limit(self) -> int | None:
        """Every record still to come from an empty source is after this (None: an empty
        source blocks); ``_UNBOUNDED`` when no empty source limits."""
        limit = _UNBOUNDED
        estimate: int | None = None
        estimated = False
        for source in self._sources.values():
            if source.buffer:
                continue
            if source.kind is SourceKind.PROGRESS:
                if source.idle and _read_to_end(source):
                    continue
                if source.bound is None:
                    return None
                limit = min(limit, source.bound)
                continue
            if not source.caught_up:
                return None
            if not estimated:
                estimate, estimated = self.estimate(), True
            if estimate is None:
                return None
            limit = min(limit, estimate - self.hold)
        return limit

    def pop(self) -> tuple[int, Any] | None:
        """The next record in event-time order, when it is safe to take (else None)."""
        best: _Source | None = None
        best_key: tuple[int, int, int, int] | None = None
        for source in self._sources.values():
            if source.buffer:
                ts, seq, _ = source.buffer[0]
                key = (ts, source.rank, source.order, seq)
                if best_key is None or key < best_key:
                    best, best_key = source, key
        if best is None or best_key is None:
            return None
        limit = self._limit()
        if limit is None or best_key[0] > limit:
            return None
        ts, _, item = best.buffer.popleft()
        if self.stream_time is not None and ts < self.stream_time:
            self.late += 1
        else:
            self.stream_time = ts
        self.taken += 1
        return ts, item

    def safe_time(self) -> int | None:
        """Every record still to come (buffered or not) is after this instant (None: not
        known)."""
        limit = self._limit()
        if limit is None:
            return None
        heads = [s.buffer[0][0] - 1 for s in self._sources.values() if s.buffer]
        safe = min([limit, *heads])
        if safe == _UNBOUNDED:
            return self.stream_time
        return safe


_UNBOUNDED = 2**63 - 1


def _read_to_end(source: _Source) -> bool:
    """An idle progress source's owner read its input to the end the merge knows of (no
    end known: taken at its word)."""
    if source.end is None:
        return True
    return source.offset is not None and source.offset >= source.end
