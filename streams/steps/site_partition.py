"""One telemetry partition's event time and windows, as its owner worker runs them (pure).

Each partition of ``site.telemetry`` has its own stream time: the largest event time read
from it (``clock``). Its windows close on that clock alone, so a backlog read in uneven
``getmany`` batches (one partition's 10,000 records, then the next one's) drops nothing:
a partition far ahead does not close the windows another partition is still filling. A
closed window becomes a :class:`~streams.steps.slices.WindowSlice` for the leader, which
closes the fleet's window once every partition's clock has passed it (``leader_core``).

A silent partition (every site on it quiet, or no site at all) must not hold the fleet's
windows back for ever: once the owner has read everything the partition holds (caught up)
and ``idle_s`` has passed without a record, the owner moves its clock along with its
estimate of event time (the newest event time it has read plus the wall time since), less
``idle_s``. That is the one decision taken on the wall clock, so it is written into the
log: the owner appends a ``TelemetryWatermark`` (no key) to the partition itself
(:func:`watermark_record`), and the clock moves when the watermark is read back, at its
place among the records (:meth:`PartitionTelemetry.add`: every window it passes closes, and
a record after it for a window that closed is late: dropped and counted, ``late``). Whoever
reads the partition again (a new owner, a worker re-run on a replay of the log) meets the
same watermark between the same records and decides the same, so reading a log live or
afterwards gives the same windows (Flink and Beam put watermarks into the stream for this).
A partition that never had a record nor a watermark has no clock: its progress says
``idle`` and the leader does not wait for it (only until its owner, having an estimate from
any partition, writes it a watermark).

Restart without a changelog: the owner commits, per partition, the *low-water* offset, the
first offset of the oldest batch that may still hold a record of an open window
(:meth:`PartitionTelemetry.commit_offset`), so a new owner re-reads the open windows'
records from Kafka. It resumes from the last progress the previous owner published
(:meth:`restore`): windows that had closed are not emitted again, and the records read a
second time (before ``progress.offset``) are not counted as late.

The filter's limits (``limits_at``): each site's power limits as of an instant, from the
slices this partition emitted (the shortest window length), so a setpoint is clamped with
the limits the leader split it with.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from contract.codec import decode_raw
from contract.errors import EventDecodeError
from contract.fields import MICROS_PER_S
from streams.steps.deadletter import ConsumedRecord
from streams.steps.filter_state import SiteLimits
from streams.steps.fleet_aggregation import TumblingWindows
from streams.steps.slices import PartitionProgress, SliceAggregator, SliceRecord, WindowSlice
from streams.steps.telemetry_step import BatchOutcome, TelemetryStep

#: how long a site's limits history reaches back (older entries are pruned but the last)
LIMITS_HISTORY_S = 120
#: the event a worker writes into a silent telemetry partition (see the module doc)
WATERMARK_EVENT = "TelemetryWatermark"
#: the watermark's id: one per (app, partition, instant), so a repeat is a duplicate
_WATERMARK_NS = uuid.UUID("6f1d3c2a-9b7e-5e41-8c0d-2f4a6b8e0c17")


def watermark_record(app_id: str, partition: int, at: int) -> dict[str, object]:
    """The ``TelemetryWatermark`` record saying partition ``partition`` is at ``at``."""
    event_id = uuid.uuid5(_WATERMARK_NS, f"{app_id}/{partition}/{at}")
    return {"event_id": str(event_id), "event_time": at, "partition": partition, "app_id": app_id}


def watermark_of(record: ConsumedRecord) -> int | None:
    """The instant of a ``TelemetryWatermark`` record (None: any other record; a watermark
    has no key, a site's telemetry always has one)."""
    value = record.value
    if record.key is not None or not isinstance(value, bytes):
        return None
    try:
        event = decode_raw(value)
    except EventDecodeError:
        return None  # not ours: the telemetry step makes it a dead letter
    if event.name != WATERMARK_EVENT:
        return None
    return int(event.record["event_time"])


def close_grid(at: int, size: int, grace: int) -> int:
    """The latest instant at or before ``at`` at which a window of ``size`` closes (its end
    plus ``grace``): a watermark there closes as much as one at ``at``."""
    return (at - grace) // size * size + grace


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    """A folded batch: its first offset and its newest event time."""

    first_offset: int
    newest: int


def _closing(s: WindowSlice) -> tuple[int, int]:
    return s.window_end, s.window_s


class PartitionTelemetry:
    """Windows, clock, offsets and limits of one telemetry partition (see the module doc)."""

    def __init__(
        self,
        partition: int,
        windows_s: Sequence[int],
        grace_s: float,
        idle_s: float,
    ) -> None:
        self.partition = partition
        self.idle = round(idle_s * MICROS_PER_S)
        self.step: TelemetryStep[WindowSlice] = TelemetryStep(
            [TumblingWindows(SliceAggregator(partition, w), grace_s) for w in windows_s], None
        )
        self.grace = self.step.windows[0].grace
        self._shortest = min(range(len(windows_s)), key=lambda k: windows_s[k])
        self.next_offset = 0  #: the offset after the last record folded
        self._replay_until = 0  # records below it were folded by a previous owner
        self._checkpoints: deque[_Checkpoint] = deque()
        # per site, when its limits changed: (instant, max discharge, max charge)
        self._limits: dict[str, list[tuple[int, float, float]]] = {}
        self.replayed = 0  #: records read again after a restore
        self._restored_clock: int | None = None  # the previous owner's stream time
        #: the stream time records (not watermarks) moved the clock to last
        self.data_clock: int | None = None
        self.watermarks = 0  #: watermarks read

    # ------------------------------------------------------------------ state
    @property
    def clock(self) -> int | None:
        """The partition's stream time (None before its first record)."""
        return self.step.windows[0].watermark

    @property
    def late(self) -> int:
        """Records dropped as late (their window had closed), over every window length."""
        return sum(w.late_events for w in self.step.windows)

    def closed(self) -> dict[int, int]:
        """Per window length, the end of the last window closed."""
        return {
            w.aggregator.window_s: w.closed_before
            for w in self.step.windows
            if w.closed_before is not None
        }

    def progress(self, *, idle: bool = False) -> PartitionProgress:
        """What the leader is told. The stream time never goes back below the previous
        owner's (a restored partition re-reads older records first), and a partition that
        had a clock is never reported idle: the leader keeps waiting for its slices."""
        clock = self.clock
        restored = self._restored_clock
        if restored is not None and (clock is None or clock < restored):
            clock = restored
        return PartitionProgress(
            self.partition,
            clock,
            self.closed(),
            self.next_offset,
            idle and clock is None,
            self.late,
        )

    def restore(self, progress: PartitionProgress | None, committed: int) -> None:
        """Resume at ``committed`` (the offset the group had committed) after the previous
        owner's last ``progress`` (None: nothing published: start afresh)."""
        self.next_offset = committed
        self._replay_until = committed
        if progress is None:
            return
        self._replay_until = max(committed, progress.offset)
        self._restored_clock = progress.clock
        for windows in self.step.windows:
            end = progress.closed.get(windows.aggregator.window_s)
            if end is not None:
                windows.closed_before = end

    def commit_offset(self) -> int:
        """The offset to commit: a new owner re-reads from it every record an open window
        may hold (see the module doc)."""
        oldest = min((min(w.open) for w in self.step.windows if w.open), default=None)
        checkpoints = self._checkpoints
        if oldest is None:
            checkpoints.clear()
            return self.next_offset
        while checkpoints and checkpoints[0].newest < oldest:
            checkpoints.popleft()  # its records are all before every open window
        return checkpoints[0].first_offset if checkpoints else self.next_offset

    # ------------------------------------------------------------------ folding
    def add(self, records: Sequence[ConsumedRecord], now: int) -> BatchOutcome[WindowSlice]:
        """Fold a batch of this partition's records (offset order), watermarks at their
        place; dead letters stamped ``now``."""
        if not records:
            return BatchOutcome()
        if all(r.key is not None for r in records):
            return self._add(records, now)
        outcome: BatchOutcome[WindowSlice] = BatchOutcome()
        run: list[ConsumedRecord] = []
        for record in records:
            at = watermark_of(record)
            if at is None:
                run.append(record)
                continue
            if run:
                _merge(outcome, self._add(run, now))
                run = []
            outcome.states += self.watermark_to(at)
            self.watermarks += 1
            self.next_offset = record.offset + 1
        if run:
            _merge(outcome, self._add(run, now))
        outcome.states.sort(key=_closing)
        return outcome

    def watermark_to(self, at: int) -> list[WindowSlice]:
        """Move the clock to ``at`` (never back): every window whose close it passes closes,
        including those no record opened (a record of one later is late: the leader may
        have closed it with this partition's progress); the slices that closes."""
        slices: list[WindowSlice] = []
        for windows in self.step.windows:
            slices += windows.advance(at)
            end = (at - windows.grace) // windows.size * windows.size
            if windows.closed_before is None or end > windows.closed_before:
                windows.closed_before = end
        slices.sort(key=_closing)
        self._note_limits(slices)
        return slices

    def _add(self, records: Sequence[ConsumedRecord], now: int) -> BatchOutcome[WindowSlice]:
        before = self.clock
        outcome = self._fold(records, now)
        if self.clock != before:
            self.data_clock = self.clock
        return outcome

    def _fold(self, records: Sequence[ConsumedRecord], now: int) -> BatchOutcome[WindowSlice]:
        first = records[0].offset
        replay = [r for r in records if r.offset < self._replay_until]
        fresh = records[len(replay) :] if replay else records
        outcome: BatchOutcome[WindowSlice] = BatchOutcome()
        if replay:
            late = [w.late_events for w in self.step.windows]
            again = self.step.add_batch(replay, now)
            for windows, before in zip(self.step.windows, late, strict=True):
                windows.late_events = before  # folded (or dropped) by the previous owner
            # dead letters again too: the same ids (topic, partition, offset), and one the
            # previous owner did not get acknowledged is not lost
            outcome = again
            self.replayed += len(replay)
        if fresh:
            more = self.step.add_batch(fresh, now)
            outcome.states += more.states
            outcome.dead_letters += more.dead_letters
            outcome.accepted += more.accepted
        newest = self.clock
        self._checkpoints.append(_Checkpoint(first, newest if newest is not None else 0))
        self.next_offset = records[-1].offset + 1
        # in the order they close (end, then length): the leader merges a partition's
        # slices in its record order, so their close instants must not go back
        outcome.states.sort(key=_closing)
        self._note_limits(outcome.states)
        return outcome

    def advance(self, estimate: int) -> list[WindowSlice]:
        """A caught-up, silent partition read in one process (``streams.testing.pipeline``):
        the watermark its owner would write, ``estimate - idle_s`` (never back; nothing when
        the partition has no clock yet), applied at once; the slices that closes."""
        clock = self.clock
        if clock is None:
            return []
        target = estimate - self.idle
        if target <= clock:
            return []
        return self.watermark_to(target)

    def records(
        self, slices: Sequence[WindowSlice], progress: PartitionProgress
    ) -> list[SliceRecord]:
        """The slices-topic records of ``slices`` (each with ``progress``), or the progress
        alone when there are none."""
        if not slices:
            return [SliceRecord(progress)]
        return [SliceRecord(progress, s) for s in slices]

    # ------------------------------------------------------------------ limits
    def _note_limits(self, slices: Sequence[WindowSlice]) -> None:
        shortest = self.step.windows[self._shortest].aggregator.window_s
        for s in slices:
            if s.window_s != shortest:
                continue
            at = s.window_end + self.grace
            for site, max_out, max_in in zip(
                s.site_ids, s.max_discharge_kw.tolist(), s.max_charge_kw.tolist(), strict=True
            ):
                if math.isnan(max_out) or math.isnan(max_in):
                    continue
                history = self._limits.get(site)
                if history is None:
                    history = self._limits[site] = []
                elif history[-1][1] == max_out and history[-1][2] == max_in:
                    continue
                history.append((at, max_out, max_in))
                horizon = at - LIMITS_HISTORY_S * MICROS_PER_S
                while len(history) > 1 and history[1][0] <= horizon:
                    history.pop(0)

    def limits_at(self, site_id: str, at: int) -> SiteLimits | None:
        """The site's limits as of ``at`` (the last known before it; the oldest known when
        none is that old; None for a site never seen)."""
        history = self._limits.get(site_id)
        if not history:
            return None
        i = bisect.bisect_right(history, at, key=lambda e: e[0])
        _, max_out, max_in = history[max(i - 1, 0)]
        return SiteLimits(max_out, max_in)

    def known_limits(self) -> Mapping[str, SiteLimits]:
        """Each site's latest limits (tests, diagnostics)."""
        return {site: SiteLimits(h[-1][1], h[-1][2]) for site, h in self._limits.items() if h}


def _merge(into: BatchOutcome[WindowSlice], more: BatchOutcome[WindowSlice]) -> None:
    into.states += more.states
    into.dead_letters += more.dead_letters
    into.accepted += more.accepted
