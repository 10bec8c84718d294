"""The fleet's brain on the leader: windows merged, allocation, live compliance (pure).

One worker at a time leads (``streams.agents.leader``); it feeds :class:`LeaderCore` its
inputs in event-time order (``steps.event_time``) and sends what it returns. Everything
here is a function of those inputs and their timestamps, so a live run, a backlog, a new
leader and a replay of the log decide alike:

- a partition's slice (``handle_slice``): its rows join the open fleet window of its
  length and start; the shortest window length's rows also update the site book (each
  site's availability: ``fleet_book``). A slice of a window already closed is late
  (counted, its rows still update the book);
- a fleet request (``handle_fleet``: MarketActivation, ReserveAssignment, FleetSetpoint) is
  split at its timestamp (``fleet_allocations.apply_request``: "now" is the request's event
  time; staleness of the sites is judged against it), and activations and assignments
  become obligations of live compliance;
- a command result (``handle_result``) updates the book (derating);
- time (``advance``): every fleet window whose close (end + grace) has passed is merged
  into its FleetState (``FleetAggregator.result`` over every partition's rows: the same
  FleetState one worker reading every partition computes) and judged by live compliance
  against the obligations in force, with the sites stale at its end; at every whole
  second the allocations are refreshed (expired ones dropped, sticky re-splits where the
  book no longer lets one stand: ``fleet_allocations.refresh``), whenever the book changed,
  an allocation expired, or a site's telemetry grew older than ``telemetry_max_age_s`` in
  event time (a silent home gives up its share; a new leader, whose first re-split looks at
  the rebuilt book, decides the same). Window closes come before
  the re-split of the same instant.

The state a new leader needs that is not in the inputs it re-reads is
:meth:`LeaderCore.snapshot` (the allocations per slot, live compliance's obligations, the
windows emitted so far, the clock and the next re-split): the leader writes it to a
compacted topic in the same transaction as the outputs it goes with. A new leader restores
it and re-reads the slices and command results of the last ``lookback`` seconds (the book
and the open windows); windows closed before the snapshot are not emitted again, and no
allocation is split again unless the book asks for it (no share is re-sent).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contract.errors import InvalidEventError, InvalidRecordError
from contract.fields import MICROS_PER_S
from contract.records import (
    ComplianceVerdict,
    FleetSetpoint,
    FleetState,
    MarketActivation,
    ReserveAssignment,
    SiteSetpoint,
)
from streams.steps.allocation import (
    Allocation,
    AllocationRequest,
    activation_request,
    fleet_setpoint_request,
    reserve_request,
)
from streams.steps.availability import AllocatorConfig
from streams.steps.compliance import (
    ComplianceConfig,
    ComplianceState,
    add_activation,
    add_assignment,
    evaluate,
)
from streams.steps.fleet_aggregation import FleetAggregator
from streams.steps.fleet_allocations import FleetAllocations, apply_request, refresh
from streams.steps.fleet_book import FleetBook
from streams.steps.slices import WindowSlice, close_time, window_columns_of

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
#: period of the allocator's re-split, in event time (aligned on whole periods)
REALLOCATE_EVERY_S = 1
FLEET_EVENTS = frozenset({"FleetSetpoint", "MarketActivation", "ReserveAssignment"})


class ForeignFleetError(InvalidEventError):
    """A fleet-level event for another fleet than the leader's."""


@dataclass
class LeaderOutput:
    """What the leader sends: FleetStates, site setpoints, verdicts (each in order), dead
    letters, and the allocations made (their reports are logged)."""

    states: list[FleetState] = field(default_factory=list)
    setpoints: list[SiteSetpoint] = field(default_factory=list)
    verdicts: list[ComplianceVerdict] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)

    def extend(self, other: LeaderOutput) -> None:
        self.states += other.states
        self.setpoints += other.setpoints
        self.verdicts += other.verdicts
        self.allocations += other.allocations

    def __bool__(self) -> bool:
        return bool(self.states or self.setpoints or self.verdicts or self.allocations)


@dataclass(frozen=True, slots=True)
class LeaderConfig:
    fleet_id: str
    windows_s: tuple[int, ...]
    grace_us: int
    allocator: AllocatorConfig
    compliance: ComplianceConfig


class LeaderCore:
    """The leader's state and steps (see the module doc)."""

    def __init__(self, config: LeaderConfig) -> None:
        if not config.windows_s:
            raise ValueError("windows_s must not be empty")
        self.config = config
        self.shortest = min(config.windows_s)
        self.aggregators = {w: FleetAggregator(config.fleet_id, w) for w in config.windows_s}
        self.book = FleetBook()
        self.allocations = FleetAllocations()
        self.compliance = ComplianceState()
        # per open fleet window (length, start): each partition's slice of it
        self.open: dict[tuple[int, int], dict[int, WindowSlice]] = {}
        self.emitted: dict[int, int] = {}  # per length: windows starting before it are done
        self.clock: int | None = None  # time advanced to (closes and re-splits done)
        self.next_tick: int | None = None
        self.book_version = -1  # the book's version at the last re-split check
        self.stale: tuple[str, ...] = ()  # the sites too old to allocate to, then
        self.catch_up_until: int | None = None  # restored: inputs up to it were handled
        self.late_slices = 0
        self.dirty = False  # the snapshot changed since it was last taken

    # ------------------------------------------------------------------ inputs
    def handle_slice(self, s: WindowSlice) -> None:
        """A partition's slice (see the module doc). A second slice of the same partition
        and window (a partition's owner that repeated itself: the same rows) is ignored."""
        if s.window_s == self.shortest:
            self.book.note_slice(s)
        if s.window_s not in self.aggregators:
            return
        if s.window_start < self.emitted.get(s.window_s, s.window_start):
            if self.catch_up_until is None or close_time(s, self.config.grace_us) > (
                self.catch_up_until
            ):
                self.late_slices += 1
            return
        self.open.setdefault((s.window_s, s.window_start), {}).setdefault(s.partition, s)

    def handle_result(self, record: Mapping[str, Any]) -> None:
        """A decoded CommandResult (``InvalidRecordError`` when it is not a valid one)."""
        self.book.update_result(record)

    def _check_fleet(self, fleet_id: str) -> None:
        if fleet_id != self.config.fleet_id:
            raise ForeignFleetError(
                f"fleet_id {fleet_id!r} is not this worker's {self.config.fleet_id!r}"
            )

    def request_of(self, name: str, record: Mapping[str, Any]) -> AllocationRequest | None:
        """The allocation request of a decoded fleet event (None: nothing to split); also
        notes activations and assignments as obligations. ``EventError`` for a bad one."""
        if name == "FleetSetpoint":
            sp = FleetSetpoint.from_record(record)
            self._check_fleet(sp.fleet_id)
            return fleet_setpoint_request(sp)
        if name == "MarketActivation":
            act = MarketActivation.from_record(record)
            self._check_fleet(act.fleet_id)
            self.compliance = add_activation(self.compliance, act)
            self.dirty = True
            return activation_request(act, self.config.allocator.order_margin)
        if name == "ReserveAssignment":
            asg = ReserveAssignment.from_record(record)
            self._check_fleet(asg.fleet_id)
            self.compliance = add_assignment(self.compliance, asg)
            self.dirty = True
            request = reserve_request(asg)
            if request is None:
                log.info(
                    "reserve assignment %s: %s capacity %.3f MW is activation-driven, "
                    "nothing to arm",
                    asg.assignment_id,
                    asg.product.value,
                    asg.capacity_mw,
                )
            return request
        raise InvalidEventError(f"{name} is not a fleet request ({', '.join(FLEET_EVENTS)})")

    def handle_fleet(self, name: str, record: Mapping[str, Any], ts: int) -> LeaderOutput:
        """A decoded fleet request at timestamp ``ts``: split it now (the clock: ``ts``,
        or the leader's clock when the request comes late)."""
        out = LeaderOutput()
        request = self.request_of(name, record)
        if request is None:
            return out
        now = ts if self.clock is None else max(ts, self.clock)
        self.allocations, allocation = apply_request(
            self.allocations, request, self.book.statuses(), now, self.config.allocator
        )
        self.book_version = self.book.version
        self.dirty = True
        out.allocations.append(allocation)
        out.setpoints.extend(allocation.setpoints)
        return out

    # ------------------------------------------------------------------ time
    def advance(self, until: int | None) -> LeaderOutput:
        """Close the fleet windows and run the re-splits due up to ``until`` (module doc)."""
        out = LeaderOutput()
        if until is None or (self.clock is not None and until <= self.clock):
            return out
        grace = self.config.grace_us
        period = REALLOCATE_EVERY_S * MICROS_PER_S
        if self.next_tick is None:
            self.next_tick = (until // period) * period
        closes = sorted(
            (start + w * MICROS_PER_S + grace, w, start)
            for (w, start) in self.open
            if start + w * MICROS_PER_S + grace <= until
        )
        ticks = list(range(self.next_tick, until + 1, period))
        events = sorted(
            [(c, 0, w, start) for c, w, start in closes] + [(t, 1, 0, 0) for t in ticks]
        )
        for at, kind, w, start in events:
            if kind == 0:
                out.states.append(self._close(w, start, out))
            else:
                self._resplit(at, out)
        if ticks:
            self.next_tick = ticks[-1] + period
        self.clock = until
        self.dirty = self.dirty or bool(events)
        return out

    def _close(self, w: int, start: int, out: LeaderOutput) -> FleetState:
        parts = self.open.pop((w, start))
        columns = window_columns_of([parts[p] for p in sorted(parts)])
        state = self.aggregators[w].result_of_columns(columns, start)
        end = start + w * MICROS_PER_S
        if end > self.emitted.get(w, end - 1):
            self.emitted[w] = end
        stale_after = round(self.config.compliance.stale_after_s * MICROS_PER_S)
        stale = self.book.stale(state.window_end - stale_after)
        self.compliance, verdicts = evaluate(self.compliance, state, stale, self.config.compliance)
        out.verdicts.extend(verdicts)
        return state

    def _resplit(self, now: int, out: LeaderOutput) -> None:
        by_slot = self.allocations.by_slot
        if not by_slot:
            return
        expired = any(a.request.valid_until <= now for a in by_slot.values())
        # a site whose telemetry grew too old (in event time) gives up its share: the book
        # did not change, time did
        max_age = round(self.config.allocator.telemetry_max_age_s * MICROS_PER_S)
        stale = tuple(self.book.stale(now - max_age))
        if self.book.version == self.book_version and not expired and stale == self.stale:
            return
        self.book_version, self.stale = self.book.version, stale
        self.allocations, done = refresh(
            self.allocations, self.book.statuses(), now, self.config.allocator
        )
        for allocation in done:
            out.allocations.append(allocation)
            out.setpoints.extend(allocation.setpoints)

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> dict[str, Any]:
        """The state a new leader restores (JSON-able; see the module doc)."""
        self.dirty = False
        return {
            "v": SNAPSHOT_VERSION,
            "fleet_id": self.config.fleet_id,
            "clock": self.clock,
            "next_tick": self.next_tick,
            "emitted": {str(w): end for w, end in sorted(self.emitted.items())},
            "allocations": self.allocations.to_dict(),
            "compliance": self.compliance.to_dict(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a snapshot (``InvalidRecordError`` when it is not one of this fleet's)."""
        n = "LeaderSnapshot"
        if data.get("v") != SNAPSHOT_VERSION:
            raise InvalidRecordError(n, "v", f"unknown version {data.get('v')!r}")
        if data.get("fleet_id") != self.config.fleet_id:
            raise InvalidRecordError(n, "fleet_id", f"not this fleet's: {data.get('fleet_id')!r}")
        clock, tick, emitted = data.get("clock"), data.get("next_tick"), data.get("emitted")
        if clock is not None and type(clock) is not int:
            raise InvalidRecordError(n, "clock", "expected an int or null")
        if tick is not None and type(tick) is not int:
            raise InvalidRecordError(n, "next_tick", "expected an int or null")
        if not isinstance(emitted, Mapping):
            raise InvalidRecordError(n, "emitted", "expected an object")
        allocations, compliance = data.get("allocations"), data.get("compliance")
        if not isinstance(allocations, Mapping) or not isinstance(compliance, Mapping):
            raise InvalidRecordError(n, "allocations", "allocations and compliance: objects")
        try:
            self.emitted = {int(w): int(end) for w, end in emitted.items()}
        except (TypeError, ValueError) as exc:
            raise InvalidRecordError(n, "emitted", repr(exc)) from exc
        self.allocations = FleetAllocations.from_dict(allocations)
        self.compliance = ComplianceState.from_dict(compliance)
        self.clock, self.next_tick = clock, tick
        self.catch_up_until = clock
        self.open.clear()
        self.book_version = -1  # the first re-split looks at the rebuilt book
        self.dirty = False

    def resume_from(self, lookback_us: int) -> int | None:
        """From when a restored leader re-reads slices and command results: the book's
        ``lookback`` before the clock, and no later than the oldest window not yet emitted
        (None: a fresh leader reads everything)."""
        if self.clock is None:
            return None
        oldest = min(self.emitted.values(), default=self.clock)
        return min(self.clock - lookback_us, oldest)
