"""Capability protocols: the only contract the edge bridge sees. No OEM names, no registers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from edge.hal.points import CanonicalPoint, Command, Fault, Identity, Telemetry, WritePlan

# Finding a device again: serial -> (host, port) where it answers now, or None (the device is
# retargeted there).
Rediscover = Callable[[str], Awaitable[tuple[str, int] | None]]


@runtime_checkable
class Identifiable(Protocol):
    async def identify(self) -> Identity: ...


@runtime_checkable
class TelemetryReader(Protocol):
    async def read_telemetry(self) -> Telemetry: ...


@runtime_checkable
class Commandable(Protocol):
    def plan_command(self, cmd: Command) -> WritePlan: ...

    async def apply(self, plan: WritePlan) -> None: ...

    async def read_setpoint_readback(self) -> float | None: ...


@runtime_checkable
class FaultReader(Protocol):
    async def read_faults(self) -> list[Fault]: ...


@runtime_checkable
class BatteryDevice(Identifiable, TelemetryReader, Commandable, FaultReader, Protocol):
    """Everything a site's battery inverter offers the bridge."""


@runtime_checkable
class TieredTelemetry(Protocol):
    """Polls that read only what is due (slow points carry their latest value)."""

    async def read_due_telemetry(self) -> Telemetry: ...

    async def read_frequency(self) -> float | None: ...

    def telemetry_ages_s(self) -> Mapping[CanonicalPoint, float]: ...


@runtime_checkable
class EconomicalWrites(Protocol):
    """Writes that leave out what the device holds and keep its heartbeat alive.

    ``plan_update``: a power update without the writes whose registers already hold the value,
    the heartbeat taken along when asked and due; ``plan_keepalive``: the standalone heartbeat
    when one is due; ``write``: apply a plan and remember what it wrote (a failure forgets
    everything); ``forget_held``: the registers may have been changed by someone else.
    """

    @property
    def write_gap_s(self) -> float: ...

    def plan_update(self, cmd: Command, now: datetime, *, carry_heartbeat: bool) -> WritePlan: ...

    def plan_keepalive(self, now: datetime) -> WritePlan | None: ...

    async def write(self, plan: WritePlan, now: datetime) -> None: ...

    def forget_held(self) -> None: ...


@dataclass(frozen=True)
class LinkCounts:
    """How a device's link has fared since the bridge started: requests sent, failed calls by
    kind (``edge.hal.errors``: timeout, unreachable, exception, malformed), connection
    attempts, and the round trips of the answered requests."""

    requests: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    connects: int = 0
    replies: int = 0
    rtt_sum_s: float = 0.0


@runtime_checkable
class LinkCounters(Protocol):
    """A device that counts its link's requests and failures (the bridge's /metrics)."""

    def link_counts(self) -> LinkCounts: ...


@runtime_checkable
class SiteDevice(BatteryDevice, TieredTelemetry, EconomicalWrites, Protocol):
    """A battery inverter under the bridge's control: everything the bridge calls."""
