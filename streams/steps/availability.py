"""Per-site availability for the allocator: how far each site can go up and down right now.

``site_availability(status, now, config) -> Availability`` (kW, both >= 0):

- no telemetry, or telemetry older than ``telemetry_max_age_s`` -> excluded (OFFLINE);
- ``faulted`` or mode FAULT -> excluded (FAULTED);
- otherwise, from the latest SiteTelemetry (its headroom already accounts for SoC reserves,
  household load and inverter/battery limits; headroom is *additional* power relative to the
  current battery power):
  ``up   = clamp(battery_power_kw + headroom_up_kw,   0, max_discharge_kw, site max_discharge)``
  ``down = clamp(headroom_down_kw - battery_power_kw, 0, max_charge_kw,    site max_charge)``;
- a CommandResult CLAMPED or OVERRIDDEN within ``clamp_window_s`` derates the direction it
  asked for to what was measured (or written, if nothing was measured): the site showed it
  cannot do more right now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from contract.enums import CommandStatus, SiteMode
from contract.errors import InvalidConfigError
from contract.fields import MICROS_PER_S
from contract.records import CommandResult, SiteTelemetry
from streams.steps.setpoint_filter import SiteLimits

_DERATING = frozenset({CommandStatus.CLAMPED, CommandStatus.OVERRIDDEN})


class Exclusion(StrEnum):
    """Why a site gets no setpoint."""

    NO_TELEMETRY = "NO_TELEMETRY"
    OFFLINE = "OFFLINE"
    FAULTED = "FAULTED"


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    """Allocator thresholds (from ``streams.settings.AllocatorSettings`` in the worker).

    ``resolution_kw``: setpoints are whole multiples of it; ``1 / resolution_kw`` must be an
    integer (0.001 = 1 W, the default).
    """

    telemetry_max_age_s: float = 10.0
    clamp_window_s: float = 60.0
    resolution_kw: float = 0.001
    issued_by: str = "allocator"

    def __post_init__(self) -> None:
        for name in ("telemetry_max_age_s", "clamp_window_s", "resolution_kw"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidConfigError(
                    f"AllocatorConfig.{name} must be finite and >= 0, got {value}"
                )
        if self.resolution_kw <= 0:
            raise InvalidConfigError("AllocatorConfig.resolution_kw must be > 0")
        scale = 1.0 / self.resolution_kw
        if abs(scale - round(scale)) > 1e-9 * scale:
            raise InvalidConfigError(
                f"AllocatorConfig.resolution_kw must be 1/n for an integer n, got "
                f"{self.resolution_kw}"
            )

    @property
    def scale(self) -> int:
        """Units per kW (1000 for a 1 W resolution)."""
        return round(1.0 / self.resolution_kw)


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """What the allocator knows about one site: its latest telemetry and command result, and
    the limits from its site configuration (``None`` = no extra limit)."""

    site_id: str
    telemetry: SiteTelemetry | None
    last_result: CommandResult | None = None
    limits: SiteLimits | None = None


@dataclass(frozen=True, slots=True)
class Availability:
    """Power a site can deliver now: ``up_kw`` discharge, ``down_kw`` charge (both >= 0)."""

    site_id: str
    up_kw: float
    down_kw: float
    excluded: Exclusion | None = None
    derated: bool = False


def site_availability(status: SiteStatus, now: int, config: AllocatorConfig) -> Availability:
    """Availability of one site (see the module doc)."""
    tel = status.telemetry
    if tel is None:
        return Availability(status.site_id, 0.0, 0.0, Exclusion.NO_TELEMETRY)
    if now - tel.event_time > config.telemetry_max_age_s * MICROS_PER_S:
        return Availability(status.site_id, 0.0, 0.0, Exclusion.OFFLINE)
    if tel.faulted or tel.mode is SiteMode.FAULT:
        return Availability(status.site_id, 0.0, 0.0, Exclusion.FAULTED)
    up = min(tel.battery_power_kw + tel.headroom_up_kw, tel.max_discharge_kw)
    down = min(tel.headroom_down_kw - tel.battery_power_kw, tel.max_charge_kw)
    if status.limits is not None:
        up = min(up, status.limits.max_discharge_kw)
        down = min(down, status.limits.max_charge_kw)
    up, down = max(up, 0.0), max(down, 0.0)
    result = status.last_result
    derated = False
    if (
        result is not None
        and result.status in _DERATING
        and now - result.event_time <= config.clamp_window_s * MICROS_PER_S
    ):
        achieved = result.measured_kw if result.measured_kw is not None else result.written_kw
        achieved = 0.0 if achieved is None else achieved
        asked = result.requested_kw if result.requested_kw is not None else achieved
        if asked > 0:
            up, derated = min(up, max(achieved, 0.0)), True
        elif asked < 0:
            down, derated = min(down, max(-achieved, 0.0)), True
    return Availability(status.site_id, up, down, None, derated)
