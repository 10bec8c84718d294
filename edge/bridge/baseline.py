"""A site's baseline: what its battery would do now with no reserve and no order. Pure.

Delivered reserve = battery power - baseline (facts §4.3 [TR25 §3.8]); the baseline is
either a predetermined setpoint or "a calculated expected output without frequency control"
(CalcBaseline). Each control cycle, from the latest telemetry, in this order:

1. ``SETPOINT``: a SET_POWER (or STOP: 0 kW) in force, the predetermined setpoint;
2. ``SCHEDULE``: the site config's schedule entry in force (a planned charge or discharge);
3. ``SELF_CONSUMPTION``: the site's own mode, the battery covering load - PV;
4. ``UNKNOWN``: load or PV not measured: the last baseline computed (0 before the first).

Every one is bounded by the battery's limits and SoC reserve and the grid connection's
(:class:`edge.bridge.bounds.Bounds`): self-consumption within them is exactly what the OEM's
own mode does with the battery.

Known limit: a map whose load is derived from registers read apart (Huawei: inverter active
power - meter power) sees the load off by the battery's own movement between the two reads
while the battery ramps after a write; the baseline then moves once more before it settles
(measured on the simulators at the OEMs' response times: one extra write after a 2 kW step).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from edge.bridge.bounds import Bounds
from edge.bridge.config import ScheduleEntry


class BaselineSource(enum.StrEnum):
    SETPOINT = "SETPOINT"
    SCHEDULE = "SCHEDULE"
    SELF_CONSUMPTION = "SELF_CONSUMPTION"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Baseline:
    """Battery power without reserves and orders, kW (+ = discharging), and where it came from."""

    kw: float
    source: BaselineSource


def scheduled_kw(schedule: Sequence[ScheduleEntry], zone: str, now: datetime) -> float | None:
    """The schedule's power at ``now`` (None: no entry in force)."""
    if not schedule:
        return None
    local = now.astimezone(ZoneInfo(zone)).time()
    for entry in schedule:
        if entry.covers(local):
            return entry.power_kw
    return None


def baseline(
    bounds: Bounds,
    *,
    setpoint_kw: float | None,
    scheduled: float | None,
    load_kw: float | None,
    pv_kw: float | None,
    last_kw: float = 0.0,
) -> Baseline:
    """The baseline now (see the module doc), within ``bounds``."""
    if setpoint_kw is not None:
        return Baseline(bounds.clamp(setpoint_kw)[0], BaselineSource.SETPOINT)
    if scheduled is not None:
        return Baseline(bounds.clamp(scheduled)[0], BaselineSource.SCHEDULE)
    if load_kw is None or pv_kw is None:
        return Baseline(bounds.clamp(last_kw)[0], BaselineSource.UNKNOWN)
    net = max(0.0, load_kw) - max(0.0, pv_kw)
    return Baseline(bounds.clamp(net)[0], BaselineSource.SELF_CONSUMPTION)
