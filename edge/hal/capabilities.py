"""Capability protocols: the only contract the edge bridge sees. No OEM names, no registers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from edge.hal.points import Command, Fault, Identity, Telemetry, WritePlan


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
