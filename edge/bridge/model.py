"""The bridge's own view of commands and outcomes, independent of the wire format.

Times are timezone-aware UTC datetimes; power in kW, positive = discharging to the grid.
``edge.bridge.events`` converts to and from the Avro records.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime


class BridgeInputError(ValueError):
    """A command or parameter the bridge cannot act on; the message says which field."""


class Kind(enum.StrEnum):
    SET_POWER = "SET_POWER"
    STOP = "STOP"
    SAFE_MODE = "SAFE_MODE"
    ARM_RESERVE = "ARM_RESERVE"


class Product(enum.StrEnum):
    FCR_N = "FCR_N"
    FCR_D_UP = "FCR_D_UP"
    FCR_D_DOWN = "FCR_D_DOWN"
    FFR = "FFR"
    AFRR = "AFRR"
    MFRR = "MFRR"
    NONE = "NONE"


class Status(enum.StrEnum):
    """CommandResult.status."""

    APPLIED = "APPLIED"
    CLAMPED = "CLAMPED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    OVERRIDDEN = "OVERRIDDEN"


class Cause(enum.StrEnum):
    """CommandResult.likely_cause."""

    SOC_LIMIT = "SOC_LIMIT"
    MODE = "MODE"
    TEMPERATURE = "TEMPERATURE"
    FIRMWARE_TIMER = "FIRMWARE_TIMER"
    RATED_LIMIT = "RATED_LIMIT"
    SITE_LIMIT = "SITE_LIMIT"
    FAULT = "FAULT"
    UNKNOWN = "UNKNOWN"


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise BridgeInputError(f"{name} must be finite, got {value!r}")


@dataclass(frozen=True)
class ReserveParams:
    """Droop parameters of an ARM_RESERVE command (SiteCommand.reserve)."""

    product: Product
    capacity_kw: float
    f_start_hz: float
    f_full_hz: float
    deadband_hz: float = 0.0
    symmetric: bool = False

    def __post_init__(self) -> None:
        for name in ("capacity_kw", "f_start_hz", "f_full_hz", "deadband_hz"):
            _finite(name, getattr(self, name))
        if self.capacity_kw < 0:
            raise BridgeInputError(f"capacity_kw must be >= 0, got {self.capacity_kw}")
        if self.deadband_hz < 0:
            raise BridgeInputError(f"deadband_hz must be >= 0, got {self.deadband_hz}")
        if not 40.0 <= self.f_start_hz <= 60.0 or not 40.0 <= self.f_full_hz <= 60.0:
            raise BridgeInputError("f_start_hz and f_full_hz must lie within 40..60 Hz")
        if self.product in (Product.AFRR, Product.MFRR, Product.NONE):
            raise BridgeInputError(
                f"{self.product} is not a frequency-responsive product; cannot arm it locally"
            )
        if self.product is Product.FFR:
            if self.f_full_hz > self.f_start_hz:
                raise BridgeInputError("FFR: f_full_hz (trigger) must be <= f_start_hz")
            return
        if self.f_start_hz == self.f_full_hz:
            raise BridgeInputError(f"{self.product}: f_start_hz must differ from f_full_hz")
        if self.product is Product.FCR_D_UP and self.f_full_hz > self.f_start_hz:
            raise BridgeInputError("FCR_D_UP: f_full_hz must be below f_start_hz")
        if self.product is Product.FCR_D_DOWN and self.f_full_hz < self.f_start_hz:
            raise BridgeInputError("FCR_D_DOWN: f_full_hz must be above f_start_hz")
        if self.deadband_hz >= abs(self.f_start_hz - self.f_full_hz):
            raise BridgeInputError("deadband_hz must be narrower than |f_start_hz - f_full_hz|")


@dataclass(frozen=True)
class BridgeCommand:
    """One SiteCommand as the bridge sees it."""

    command_id: str
    site_id: str
    kind: Kind
    event_time: datetime
    valid_until: datetime
    power_kw: float | None = None
    reserve: ReserveParams | None = None
    event_id: str = ""
    issued_by: str = ""

    def __post_init__(self) -> None:
        if not self.command_id:
            raise BridgeInputError("command_id must not be empty")
        if self.event_time.tzinfo is None or self.valid_until.tzinfo is None:
            raise BridgeInputError("event_time and valid_until must be timezone-aware")
        if self.kind is Kind.SET_POWER:
            if self.power_kw is None:
                raise BridgeInputError("SET_POWER needs power_kw")
            _finite("power_kw", self.power_kw)
        if self.kind is Kind.ARM_RESERVE and self.reserve is None:
            raise BridgeInputError("ARM_RESERVE needs reserve parameters")

    def expired(self, now: datetime) -> bool:
        return now >= self.valid_until


@dataclass(frozen=True)
class PowerLimits:
    """How far the bridge may drive the battery right now (both >= 0) and why."""

    max_discharge_kw: float
    max_charge_kw: float
    discharge_cause: Cause
    charge_cause: Cause

    def clamp(self, power_kw: float) -> tuple[float, Cause | None]:
        """The power to write and the binding limit, or None when it was within limits."""
        if power_kw > self.max_discharge_kw:
            return self.max_discharge_kw, self.discharge_cause
        if power_kw < -self.max_charge_kw:
            return -self.max_charge_kw, self.charge_cause
        return power_kw, None
