"""The closed vocabulary of canonical points, commands, faults and telemetry the HAL hands upward.

Units and signs are canonical: power in kW, positive = discharging / exporting to the grid.
Nothing here names an OEM or a register. The operating mode, fault source and severity are the
event contract's enums (``contract.enums``: ``SiteMode``, ``FaultSource``, ``Severity``): the
HAL decodes straight into what SiteTelemetry and SiteFault carry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from contract.enums import FaultSource, Severity, SiteMode


class CanonicalPoint(enum.StrEnum):
    """Telemetry points every map provides, with their canonical unit in the value."""

    BATTERY_POWER_KW = "battery_power_kw"
    SOC_PCT = "soc_pct"
    GRID_POWER_KW = "grid_power_kw"
    PV_POWER_KW = "pv_power_kw"
    LOAD_KW = "load_kw"
    FREQUENCY_HZ = "frequency_hz"
    MAX_CHARGE_KW = "max_charge_kw"
    MAX_DISCHARGE_KW = "max_discharge_kw"
    CAPACITY_KWH = "capacity_kwh"


# Canonical unit of each canonical point (map units are converted to these).
CANONICAL_UNITS: dict[CanonicalPoint, str] = {
    CanonicalPoint.BATTERY_POWER_KW: "kW",
    CanonicalPoint.SOC_PCT: "%",
    CanonicalPoint.GRID_POWER_KW: "kW",
    CanonicalPoint.PV_POWER_KW: "kW",
    CanonicalPoint.LOAD_KW: "kW",
    CanonicalPoint.FREQUENCY_HZ: "Hz",
    CanonicalPoint.MAX_CHARGE_KW: "kW",
    CanonicalPoint.MAX_DISCHARGE_KW: "kW",
    CanonicalPoint.CAPACITY_KWH: "kWh",
}


@dataclass(frozen=True)
class Identity:
    oem: str
    model: str
    serial: str
    firmware: str
    rated_power_kw: float | None = None
    variant: str | None = None
    link: str | None = None  # connection type whose timing is in force (map timing.links)


@dataclass(frozen=True)
class Telemetry:
    """One decoded telemetry sample in canonical units; None where the device gave no value."""

    battery_power_kw: float | None
    soc_pct: float | None
    grid_power_kw: float | None
    pv_power_kw: float | None
    load_kw: float | None
    frequency_hz: float | None
    max_charge_kw: float | None
    max_discharge_kw: float | None
    capacity_kwh: float | None
    mode: SiteMode


@dataclass(frozen=True)
class Fault:
    source: FaultSource
    code: str
    name: str
    severity: Severity


class CommandKind(enum.StrEnum):
    SET_POWER = "SET_POWER"
    STOP = "STOP"
    SAFE_MODE = "SAFE_MODE"


@dataclass(frozen=True)
class Command:
    """A battery command in canonical terms: power_kw > 0 discharges, < 0 charges."""

    kind: CommandKind
    power_kw: float = 0.0
    duration_min: int | None = None

    @classmethod
    def set_power(cls, power_kw: float, duration_min: int | None = None) -> Command:
        return cls(CommandKind.SET_POWER, power_kw, duration_min)

    @classmethod
    def stop(cls) -> Command:
        return cls(CommandKind.STOP)

    @classmethod
    def safe_mode(cls) -> Command:
        return cls(CommandKind.SAFE_MODE)


@dataclass(frozen=True)
class RegisterWrite:
    """One Modbus write: FC06 (one register) or FC16 (a contiguous block)."""

    fc: int
    address: int
    values: tuple[int, ...]
    points: tuple[str, ...]
    delay_after_s: float = 0.0


@dataclass(frozen=True)
class WritePlan:
    """The ordered writes for one command. Pure data: print it (dry run) or apply it."""

    command: Command
    writes: tuple[RegisterWrite, ...] = field(default_factory=tuple)

    def describe(self) -> list[str]:
        lines = []
        for i, w in enumerate(self.writes, 1):
            vals = " ".join(f"{v:#06x}" for v in w.values)
            delay = f" then wait {w.delay_after_s:g}s" if w.delay_after_s else ""
            lines.append(
                f"{i}. FC{w.fc:02d} addr {w.address} ({w.address:#06x}) <- [{vals}]"
                f"  {'+'.join(w.points)}{delay}"
            )
        return lines
