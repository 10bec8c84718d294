"""The workers' pure steps wired without Kafka: owners' partitions -> slices -> leader.

``Pipeline`` runs what the workers run, minus the broker: one
``PartitionTelemetry`` per telemetry partition (the owners), the slices handed to the
leader's ``EventMerge`` and ``LeaderCore``, fleet requests in between. Tests feed it the
same log in different ways (live: the partitions interleaved in small batches, requests
arriving as the clock passes them; backlog: one partition's whole backlog after the other,
every request there from the start; the partitions split over any number of owners) and
compare what comes out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from contract.records import FleetState, SiteSetpoint
from streams.settings import StreamsSettings
from streams.steps import slices
from streams.steps.event_time import EventMerge, SourceKind
from streams.steps.leader_core import LeaderConfig, LeaderCore, LeaderOutput
from streams.steps.site_partition import PartitionTelemetry
from streams.testing.agents import Consumed

S = 1_000_000


def leader_config(settings: StreamsSettings) -> LeaderConfig:
    agg = settings.aggregation
    return LeaderConfig(
        fleet_id=settings.fleet_id,
        windows_s=tuple(agg.windows_s),
        grace_us=round(agg.grace_s * S),
        allocator=settings.allocator.to_config(),
        compliance=settings.compliance.to_config(),
    )


@dataclass
class Outcome:
    states: list[FleetState] = field(default_factory=list)
    setpoints: list[SiteSetpoint] = field(default_factory=list)
    late_telemetry: int = 0
    late_slices: int = 0
    late_inputs: int = 0

    def add(self, out: LeaderOutput) -> None:
        self.states += out.states
        self.setpoints += out.setpoints


class Pipeline:
    """Owners and a leader over ``partitions`` telemetry partitions (module doc)."""

    def __init__(self, settings: StreamsSettings, partitions: int, *, hold_s: float = 0.5) -> None:
        agg = settings.aggregation
        self.owners = {
            p: PartitionTelemetry(p, agg.windows_s, agg.grace_s, agg.idle_s)
            for p in range(partitions)
        }
        self.wall_us = 0
        self.merge = EventMerge(round(hold_s * S), lambda: self.wall_us)
        self.core = LeaderCore(leader_config(settings))
        for p in range(partitions):
            self.merge.add_source(("slice", p), 0, SourceKind.PROGRESS)
        self.merge.add_source("fleet", 2, SourceKind.EVENTS)
        self.merge.fetched("fleet", caught_up=True)
        self.offsets = dict.fromkeys(range(partitions), 0)
        self.outcome = Outcome()

    def telemetry(self, partition: int, values: Sequence[bytes], stamp: int = 0) -> None:
        """A batch of one partition's telemetry values (offset order), as its owner reads it."""
        first = self.offsets[partition]
        records = [
            Consumed("site.telemetry", partition, first + i, None, v) for i, v in enumerate(values)
        ]
        self.offsets[partition] = first + len(values)
        owner = self.owners[partition]
        out = owner.add(records, stamp)
        self._slices(partition, out.states)

    def _slices(self, partition: int, closed: Iterable[slices.WindowSlice]) -> None:
        owner = self.owners[partition]
        progress = owner.progress()
        grace = owner.grace
        for s in closed:
            wire = slices.decode(slices.encode(slices.SliceRecord(progress, s)))  # the wire
            assert wire.slice is not None  # noqa: S101  # a slice went in
            self.merge.push(("slice", partition), slices.close_time(wire.slice, grace), wire.slice)
        self.merge.set_progress(("slice", partition), progress.clock, idle=progress.clock is None)

    def idle(self, partition: int, estimate: int) -> None:
        """A caught-up, silent partition's owner moves its clock (``advance``)."""
        self._slices(partition, self.owners[partition].advance(estimate))

    def fleet(self, ts: int, name: str, record: dict[str, Any]) -> None:
        self.merge.push("fleet", ts, (name, record))

    def lead(self) -> None:
        """What the leader can do now."""
        core, merge = self.core, self.merge
        while (item := merge.pop()) is not None:
            ts, payload = item
            self.outcome.add(core.advance(ts - 1))
            if isinstance(payload, slices.WindowSlice):
                core.handle_slice(payload)
            else:
                name, record = payload
                self.outcome.add(core.handle_fleet(name, record, ts))
        self.outcome.add(core.advance(merge.safe_time()))

    def finish(self, end: int) -> Outcome:
        """Every partition silent until ``end``, the fleet requests all in: the rest comes out."""
        for p in self.owners:
            self.idle(p, end)
        self.wall_us = max(self.wall_us, end)
        self.lead()
        self.outcome.late_telemetry = sum(o.late for o in self.owners.values())
        self.outcome.late_slices = self.core.late_slices
        self.outcome.late_inputs = self.merge.late
        return self.outcome


Feed = Callable[[Pipeline], None]
