"""The bridge's own view of commands and outcomes, independent of the wire format.

The vocabulary is the contract's (``contract.enums``: CommandKind, Product, CommandStatus;
``contract.records.ReserveArm`` for the droop parameters); what is the bridge's own is its
domain checks (:func:`reserve_problem`: a band that makes sense for its product; the
product a DISARM_RESERVE or an ORDER may name), the times as timezone-aware UTC datetimes
(:class:`BridgeCommand`, converted once, where a SiteCommand comes in:
``edge.bridge.events``) and the likely causes of a clamp (:class:`Cause`; CommandResult's
``likely_cause`` is a string).

Power in kW, positive = discharging to the grid.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime

from contract.enums import CommandKind, Product
from contract.products import curve_for
from contract.records import ReserveArm


class BridgeInputError(ValueError):
    """A command or parameter the bridge cannot act on; the message says which field."""


class Cause(enum.StrEnum):
    """CommandResult.likely_cause."""

    SOC_LIMIT = "SOC_LIMIT"
    MODE = "MODE"
    TEMPERATURE = "TEMPERATURE"
    FIRMWARE_TIMER = "FIRMWARE_TIMER"
    RATED_LIMIT = "RATED_LIMIT"
    SITE_LIMIT = "SITE_LIMIT"
    GRID_LIMIT = "GRID_LIMIT"  # the grid connection: main fuse (import) or export limit
    FAULT = "FAULT"
    UNKNOWN = "UNKNOWN"


#: Products armed for edge-local frequency response (ARM_RESERVE / DISARM_RESERVE), in the
#: order telemetry's one-product ``reserve_armed`` names the first armed.
FREQUENCY_PRODUCTS: tuple[Product, ...] = (
    Product.FCR_N,
    Product.FCR_D_UP,
    Product.FCR_D_DOWN,
    Product.FFR,
)
#: Products served as a change against the baseline (ORDER).
ORDER_PRODUCTS: tuple[Product, ...] = (Product.AFRR, Product.MFRR)


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise BridgeInputError(f"{name} must be finite, got {value!r}")


def _number_problem(arm: ReserveArm) -> str | None:
    for name in ("capacity_kw", "f_start_hz", "f_full_hz", "deadband_hz"):
        value = getattr(arm, name)
        if not math.isfinite(value):
            return f"{name} must be finite, got {value!r}"
    if arm.capacity_kw < 0:
        return f"capacity_kw must be >= 0, got {arm.capacity_kw}"
    if arm.deadband_hz < 0:
        return f"deadband_hz must be >= 0, got {arm.deadband_hz}"
    if not 40.0 <= arm.f_start_hz <= 60.0 or not 40.0 <= arm.f_full_hz <= 60.0:
        return "f_start_hz and f_full_hz must lie within 40..60 Hz"
    return None


def _product_problem(arm: ReserveArm) -> str | None:
    p = arm.product
    if p not in FREQUENCY_PRODUCTS:
        return f"{p} is not a frequency-responsive product; cannot arm it locally"
    symmetric = curve_for(p).symmetric
    if arm.symmetric != symmetric:
        side = "both ways (symmetric: true)" if symmetric else "one way (symmetric: false)"
        return f"{p} responds {side}"
    return None


def _band_problem(arm: ReserveArm) -> str | None:
    p, start, full = arm.product, arm.f_start_hz, arm.f_full_hz
    if p is Product.FFR:
        return "FFR: f_full_hz (trigger) must be <= f_start_hz" if full > start else None
    if start == full:
        return f"{p}: f_start_hz must differ from f_full_hz"
    if p in (Product.FCR_D_UP, Product.FCR_N) and full > start:
        return f"{p}: f_full_hz must be below f_start_hz (full discharge at low frequency)"
    if p is Product.FCR_D_DOWN and full < start:
        return "FCR_D_DOWN: f_full_hz must be above f_start_hz"
    if arm.deadband_hz >= abs(start - full):
        return "deadband_hz must be narrower than |f_start_hz - f_full_hz|"
    return None


def reserve_problem(arm: ReserveArm) -> str | None:
    """What is wrong with an arm's droop parameters for its product (None: nothing).

    The response follows the product's curve (``contract.products``): FCR-N symmetric, FCR-D
    up/down linear on their side of 50 Hz, FFR a step at its trigger frequency.
    """
    for check in (_number_problem, _product_problem, _band_problem):
        problem = check(arm)
        if problem is not None:
            return problem
    return None


def check_reserve(arm: ReserveArm) -> None:
    """:func:`reserve_problem` as an exception (BridgeInputError)."""
    problem = reserve_problem(arm)
    if problem is not None:
        raise BridgeInputError(problem)


@dataclass(frozen=True)
class BridgeCommand:
    """One SiteCommand as the bridge sees it (constructing one checks it for the bridge)."""

    command_id: str
    site_id: str
    kind: CommandKind
    event_time: datetime
    valid_until: datetime
    power_kw: float | None = None
    reserve: ReserveArm | None = None
    event_id: str = ""
    issued_by: str = ""
    product: Product | None = None  # DISARM_RESERVE / ORDER

    def __post_init__(self) -> None:
        if not self.command_id:
            raise BridgeInputError("command_id must not be empty")
        if self.event_time.tzinfo is None or self.valid_until.tzinfo is None:
            raise BridgeInputError("event_time and valid_until must be timezone-aware")
        kind = self.kind
        if kind in (CommandKind.SET_POWER, CommandKind.ORDER):
            if self.power_kw is None:
                raise BridgeInputError(f"{kind} needs power_kw")
            _finite("power_kw", self.power_kw)
        if kind is CommandKind.ARM_RESERVE:
            if self.reserve is None:
                raise BridgeInputError("ARM_RESERVE needs reserve parameters")
            check_reserve(self.reserve)
        if kind is CommandKind.DISARM_RESERVE and self.product not in FREQUENCY_PRODUCTS:
            names = ", ".join(FREQUENCY_PRODUCTS)
            raise BridgeInputError(
                f"DISARM_RESERVE needs product one of {names}, got {self.product}"
            )
        if kind is CommandKind.ORDER and self.product not in ORDER_PRODUCTS:
            names = ", ".join(ORDER_PRODUCTS)
            raise BridgeInputError(f"ORDER needs product one of {names}, got {self.product}")

    def expired(self, now: datetime) -> bool:
        return now >= self.valid_until

    @property
    def concerns(self) -> Product | None:
        """The product an ARM_RESERVE, DISARM_RESERVE or ORDER is about (None otherwise)."""
        if self.kind is CommandKind.ARM_RESERVE and self.reserve is not None:
            return self.reserve.product
        if self.kind in (CommandKind.DISARM_RESERVE, CommandKind.ORDER):
            return self.product
        return None


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
