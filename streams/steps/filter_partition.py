"""One partition of ``site.setpoints`` through the setpoint filter, in event time (pure).

The worker that owns partition p of ``site.setpoints`` (and, co-partitioned, of
``site.telemetry``) filters its sites' setpoints. The filter's decisions depend on "now"
(staleness, expiry, the gate's ``min_interval_s``, when a held-back change is written); so
that a backlog, a restarted worker or a replay of the log decides exactly as the live run
did, "now" is the partition's own clock in event time, not the wall clock:

- the clock is the newest event time of the setpoints filtered in the partition (the
  leader stamps a setpoint with its own event time), moved forward by the due writes;
- a setpoint is filtered at ``max(clock, its event time)``: a setpoint more than
  ``max_age_s`` older than the clock is STALE, one older than the site's last is OUT_OF_ORDER
  (the filter's rules, ``steps.setpoint_filter``);
- a held-back setpoint is written at its *due instant* (``setpoint_filter.next_due``: the
  gate opens, or the write it would replace expires), never at the instant some timer
  happened to fire: before a later setpoint of the partition is filtered, every due write
  up to that setpoint's time is made; when no setpoint comes, :meth:`FilterPartition.tick`
  makes those up to the worker's estimate of the clock (the clock plus the wall time since
  it moved, less ``hold``: a setpoint may still be on its way that long).

A command's ``event_time`` is the clock at which it was written: the same in the live run
and in a replay (except for a setpoint that reached a live worker more than ``hold`` after
a due write it would have overtaken: the one case a replay can differ in, counted in
``late``).

State: ``store`` holds each site's ``FilterState.to_dict()`` (the changelog's values) and
the clock under the key ``CLOCK_KEY`` (``{"clock": int}``); ``restore`` loads both from a
changelog partition. Limits come from ``limits_at(site, instant)`` (the owner's
``PartitionTelemetry.limits_at``: as of the setpoint's event time).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contract.codec import decode_raw
from contract.errors import InvalidEventError, InvalidRecordError
from streams.steps.deadletter import ConsumedRecord, dead_letter_of
from streams.steps.filter_state import FilterConfig, FilterState, SiteLimits
from streams.steps.plain import setpoint_of_plain
from streams.steps.setpoint_filter import FilterReason, filter_setpoint, next_due, tick_with_reasons

NAME = "setpoint-filter"
#: the store key of the partition's clock (no site id is empty)
CLOCK_KEY = ""
_ACCEPTS = "SiteSetpoint"
#: drops that mean the pipeline lags or a producer misbehaves (logged by the service)
LATE_REASONS = frozenset({FilterReason.STALE, FilterReason.EXPIRED, FilterReason.OUT_OF_ORDER})

LimitsAt = Callable[[str, int], SiteLimits | None]


@dataclass
class FilterOutcome:
    """What a batch or a tick did: commands to send (records, in order), the store entries
    changed (site -> state dict, ``CLOCK_KEY`` for the clock), dead letters, and why
    setpoints were written or dropped."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    reasons: Counter[FilterReason] = field(default_factory=Counter)
    dropped: list[tuple[str, str, FilterReason, int, int]] = field(default_factory=list)

    def extend(self, other: FilterOutcome) -> None:
        self.commands += other.commands
        self.changes.update(other.changes)
        self.dead_letters += other.dead_letters
        self.reasons.update(other.reasons)
        self.dropped += other.dropped


class FilterPartition:
    """The filter state and clock of one ``site.setpoints`` partition (module doc)."""

    def __init__(self, partition: int, config: FilterConfig, hold_us: int) -> None:
        self.partition = partition
        self.config = config
        self.hold = hold_us
        self.store: dict[str, dict[str, Any]] = {}
        self.clock: int | None = None
        self.late = 0  #: setpoints filtered after a due write later than themselves
        self._parsed: dict[str, tuple[Mapping[str, Any], FilterState]] = {}
        #: states changed by the batch or tick in progress, made dicts once at its end (a
        #: home's three lanes change it three times in one fan-out: one dict, not three)
        self._unwritten: dict[str, FilterState] = {}
        self._due: list[tuple[int, str]] = []  # heap of (due instant, site); lazily stale
        self._due_of: dict[str, int] = {}
        self._last_tick: int | None = None  # the due instant of the last due write run

    # ------------------------------------------------------------------ state
    def restore(self, entries: Mapping[str, Any]) -> int:
        """Load a changelog partition's latest entries (site -> state dict; ``CLOCK_KEY``
        -> ``{"clock": ...}``); returns how many sites were loaded. A bad entry raises
        ``InvalidRecordError``."""
        sites = 0
        for key, data in entries.items():
            if data is None:
                self.store.pop(key, None)
                continue
            if not isinstance(data, Mapping):
                raise InvalidRecordError("FilterState", key or "<clock>", "expected a mapping")
            if key == CLOCK_KEY:
                clock = data.get("clock")
                if clock is not None and type(clock) is not int:
                    raise InvalidRecordError("FilterState", "clock", f"not an int: {clock!r}")
                if clock is not None:
                    self.clock = clock if self.clock is None else max(clock, self.clock)
                    self.store[CLOCK_KEY] = {"clock": self.clock}
                continue
            state = FilterState.from_dict(data)
            stored = dict(data)
            self.store[key] = stored
            self._parsed[key] = (stored, state)
            self._schedule(key, state)
            sites += 1
        return sites

    def state_of(self, site_id: str) -> FilterState:
        unwritten = self._unwritten.get(site_id)
        if unwritten is not None:
            return unwritten
        data = self.store.get(site_id)
        if data is None:
            return FilterState()
        cached = self._parsed.get(site_id)
        if cached is not None and cached[0] is data:
            return cached[1]
        state = FilterState.from_dict(data)
        self._parsed[site_id] = (data, state)
        return state

    def _set(self, site_id: str, state: FilterState) -> None:
        self._unwritten[site_id] = state
        self._schedule(site_id, state)

    def _write(self, out: FilterOutcome) -> None:
        """The states the batch or tick changed: to the store and ``out.changes``."""
        for site_id, state in self._unwritten.items():
            data = state.to_dict()
            self.store[site_id] = data
            self._parsed[site_id] = (data, state)
            out.changes[site_id] = data
        self._unwritten.clear()

    def _schedule(self, site_id: str, state: FilterState) -> None:
        due = next_due(state, self.config)
        if due is None:
            self._due_of.pop(site_id, None)
            return
        if self._due_of.get(site_id) != due:
            self._due_of[site_id] = due
            heapq.heappush(self._due, (due, site_id))

    def _move_clock(self, now: int, out: FilterOutcome) -> None:
        if self.clock is None or now > self.clock:
            self.clock = now
            out.changes[CLOCK_KEY] = self.store[CLOCK_KEY] = {"clock": now}

    def next_due(self) -> int | None:
        """The earliest due write of the partition (None: nothing pending)."""
        heap = self._due
        while heap and self._due_of.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # ------------------------------------------------------------------ time
    def _run_due(self, until: int, out: FilterOutcome) -> None:
        """Every due write at or before ``until``, in due order (ties: by site id)."""
        while (due := self.next_due()) is not None and due <= until:
            _, site_id = heapq.heappop(self._due)
            self._due_of.pop(site_id, None)
            self._last_tick = due
            now = due if self.clock is None else max(due, self.clock)
            state = self.state_of(site_id)
            new_state, commands, settled = tick_with_reasons(state, now, self.config)
            self._move_clock(now, out)
            if new_state != state:
                self._set(site_id, new_state)
            else:
                self._schedule(site_id, new_state)
            out.commands += [command.to_record() for command in commands]
            out.reasons.update(settled)  # DEFERRED, REFRESH, or EXPIRED before its gate

    def tick(self, estimate: int | None) -> FilterOutcome:
        """Due writes up to ``estimate - hold`` (``estimate``: the clock as the worker
        estimates it now; None: not known, nothing is written)."""
        out = FilterOutcome()
        if estimate is not None:
            try:
                self._run_due(estimate - self.hold, out)
            finally:
                self._write(out)
        return out

    # ------------------------------------------------------------------ setpoints
    def process(
        self, records: Sequence[ConsumedRecord], limits_at: LimitsAt, stamp: int
    ) -> FilterOutcome:
        """Filter consumed records of this partition in offset order. A record that is not
        a valid SiteSetpoint becomes a dead letter (stamped ``stamp``, processing time)."""
        out = FilterOutcome()
        try:
            self._process(records, limits_at, stamp, out)
        finally:
            self._write(out)
        return out

    def _process(
        self,
        records: Sequence[ConsumedRecord],
        limits_at: LimitsAt,
        stamp: int,
        out: FilterOutcome,
    ) -> None:
        config = self.config
        for record in records:
            try:
                value = record.value
                if not isinstance(value, bytes | bytearray | memoryview):
                    raise InvalidEventError(f"expected bytes, got {type(value).__name__}")
                decoded = decode_raw(value)
                if decoded.name != _ACCEPTS:
                    raise InvalidEventError(
                        f"{decoded.name} does not belong on {record.topic} (expected {_ACCEPTS})"
                    )
                setpoint = setpoint_of_plain(decoded.record)
            except Exception as exc:  # bad input: never fatal
                out.dead_letters.append(dead_letter_of(record, exc, NAME, stamp))
                continue
            event_time = setpoint.event_time
            self._run_due(event_time - 1, out)
            if self._last_tick is not None and event_time <= self._last_tick:
                self.late += 1  # a due write it would have preceded was already made
            now = event_time if self.clock is None else max(self.clock, event_time)
            site_id = setpoint.site_id
            state = self.state_of(site_id)
            try:
                new_state, command, reason = filter_setpoint(
                    state, setpoint, now, config, limits_at(site_id, event_time)
                )
            except Exception as exc:  # a payload that does not fit its kind: dead letter
                out.dead_letters.append(dead_letter_of(record, exc, NAME, stamp))
                continue
            self._move_clock(now, out)
            if new_state != state:
                self._set(site_id, new_state)
            if command is not None:
                out.commands.append(command.to_record())
            out.reasons[reason] += 1
            if reason in LATE_REASONS:
                out.dropped.append((site_id, setpoint.setpoint_id, reason, event_time, now))
