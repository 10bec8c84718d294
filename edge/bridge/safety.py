"""The safety gate: checked before any write. Pure: no I/O, no clock (``now`` is passed in).

Order of checks: ownership, then expiry, then bounds. A command is never written as is when it
is outside the bounds: the gate returns the clamped power and the binding limit. (The grid
connection, the products armed and the energy room come after the gate, in
:mod:`edge.bridge.headroom`, with live measurements.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from contract.enums import CommandKind
from edge.bridge.config import SiteConfig
from edge.bridge.model import BridgeCommand, Cause, PowerLimits


class Refusal(enum.StrEnum):
    FOREIGN_SITE = "FOREIGN_SITE"
    EXPIRED = "EXPIRED"
    DUPLICATE = "DUPLICATE"
    INVALID = "INVALID"


@dataclass(frozen=True)
class Rejected:
    refusal: Refusal
    reason: str


@dataclass(frozen=True)
class Accepted:
    """Go ahead: write ``written_kw`` (None: not a power of its own, e.g. STOP, SAFE_MODE, an
    arm: the pipeline works out the power). ``reason``: why it was clamped, in words."""

    command: BridgeCommand
    requested_kw: float | None
    written_kw: float | None
    clamp_cause: Cause | None
    reason: str | None = None

    @property
    def clamped(self) -> bool:
        return self.clamp_cause is not None


GateDecision = Accepted | Rejected


@dataclass(frozen=True)
class LiveLimits:
    """What the device says right now (any may be unknown)."""

    soc_pct: float | None = None
    bms_max_charge_kw: float | None = None
    bms_max_discharge_kw: float | None = None


def power_limits(
    site: SiteConfig,
    live: LiveLimits,
    map_max_discharge_kw: float | None = None,
    map_max_charge_kw: float | None = None,
) -> PowerLimits:
    """The tightest of rated power, map bounds, site battery limits, BMS limits and SoC reserve."""
    discharge: list[tuple[float, Cause]] = [
        (site.rated_power_kw, Cause.RATED_LIMIT),
        (site.battery.max_discharge_kw, Cause.SITE_LIMIT),
    ]
    charge: list[tuple[float, Cause]] = [
        (site.rated_power_kw, Cause.RATED_LIMIT),
        (site.battery.max_charge_kw, Cause.SITE_LIMIT),
    ]
    if map_max_discharge_kw is not None:
        discharge.append((max(0.0, map_max_discharge_kw), Cause.RATED_LIMIT))
    if map_max_charge_kw is not None:
        charge.append((max(0.0, map_max_charge_kw), Cause.RATED_LIMIT))
    if live.bms_max_discharge_kw is not None:
        discharge.append((max(0.0, live.bms_max_discharge_kw), Cause.RATED_LIMIT))
    if live.bms_max_charge_kw is not None:
        charge.append((max(0.0, live.bms_max_charge_kw), Cause.RATED_LIMIT))
    if live.soc_pct is not None:
        if live.soc_pct <= site.soc_reserve_min_pct:
            discharge.append((0.0, Cause.SOC_LIMIT))
        if live.soc_pct >= site.soc_reserve_max_pct:
            charge.append((0.0, Cause.SOC_LIMIT))
    # min() keeps the first of equal values: rated, then site, then map/BMS, then SoC. SoC wins
    # ties against 0 kW limits only when nothing else is 0, which is the honest attribution.
    d_kw, d_cause = min(discharge, key=lambda t: t[0])
    c_kw, c_cause = min(charge, key=lambda t: t[0])
    return PowerLimits(d_kw, c_kw, d_cause, c_cause)


def check(
    command: BridgeCommand,
    site: SiteConfig | None,
    now: datetime,
    limits: PowerLimits | None,
) -> GateDecision:
    """Decide whether and how a command may be applied. ``site`` is None for a foreign site."""
    if site is None or site.site_id != command.site_id:
        return Rejected(Refusal.FOREIGN_SITE, f"site {command.site_id!r} is not served here")
    if command.expired(now):
        late = (now - command.valid_until).total_seconds()
        return Rejected(Refusal.EXPIRED, f"expired {late:.3f} s before it could be applied")
    if command.kind is not CommandKind.SET_POWER:
        return Accepted(command, None, None, None)
    if limits is None:
        return Rejected(Refusal.INVALID, "no power limits known for the site yet")
    requested = command.power_kw
    if requested is None:  # BridgeCommand refuses this at construction; kept for the type
        return Rejected(Refusal.INVALID, "SET_POWER without power_kw")
    written, cause = limits.clamp(requested)
    return Accepted(command, requested, written, cause)
