"""What a site's three parts share, in one explicit object: latest readings, the setpoint in
force and the one write path.

The command pipeline (:mod:`edge.bridge.commands`), the telemetry loop
(:mod:`edge.bridge.telemetry`) and the reserve loop (:mod:`edge.bridge.reserve`) each own their
own state; this is all they have in common:

* the site's config, its device (HAL), the Modbus link's health and the clock;
* the latest identity, telemetry sample and power limits (the telemetry loop polls them, the
  command pipeline reads them for its gate and read-back);
* :class:`Setpoint`: what the site was told to hold (the command in force, the base power, the
  last power written);
* :class:`WritePath`: the only way to the device's registers, one plan at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from edge.bridge.config import SafeMode, SiteConfig
from edge.bridge.link import Link
from edge.bridge.model import BridgeCommand, Kind, PowerLimits
from edge.bridge.override import ResponseTiming
from edge.bridge.safety import LiveLimits, power_limits
from edge.bridge.scheduler import SiteState
from edge.hal.capabilities import SiteDevice
from edge.hal.errors import HalError
from edge.hal.points import Command, Identity, Telemetry, WritePlan


@dataclass
class Setpoint:
    """What the site holds now: the command in force (or safe mode), the base power the armed
    reserves respond around, and the last power written (None: the OEM's own mode)."""

    state: SiteState = field(default_factory=SiteState)
    base_kw: float = 0.0
    last_written_kw: float | None = None

    def commanded(self, cmd: BridgeCommand, written_kw: float) -> None:
        """``cmd``'s writes went out (``written_kw``: the power they hold)."""
        if cmd.kind is Kind.SAFE_MODE:
            self.to_safe_mode()
            return
        if cmd.kind is Kind.SET_POWER:
            self.base_kw = written_kw
        elif cmd.kind is Kind.STOP:
            self.base_kw = 0.0
        self.last_written_kw = written_kw
        self.state = SiteState(cmd, in_safe_mode=False)

    def to_safe_mode(self) -> None:
        self.state = SiteState(None, in_safe_mode=True)
        self.base_kw = 0.0
        self.last_written_kw = None


class WritePath:
    """The one way to the device's registers: a whole plan at a time (:attr:`lock`), failures
    counted on the link, and when the last write was acknowledged."""

    def __init__(self, device: SiteDevice, link: Link, clock: Callable[[], datetime]) -> None:
        self.device = device
        self.link = link
        self.clock = clock
        self.lock = asyncio.Lock()  # held from planning a command to its last write
        self.written_at: datetime | None = None  # clock time of the last acknowledged write
        self.written_mono = float("-inf")  # loop time of the same (the map's write gap)

    async def send(self, plan: WritePlan, now: datetime) -> datetime:
        """Write ``plan`` while holding :attr:`lock`; returns when it was acknowledged.
        HalError is counted on the link and re-raised."""
        try:
            await self.device.write(plan, now)
        except HalError as exc:
            self.link.failed(exc)
            raise
        self.written_mono = asyncio.get_running_loop().time()
        self.written_at = self.clock()
        return self.written_at

    async def write(self, cmd: Command, *, trim: bool = False) -> bool:
        """Plan and write ``cmd``; ``trim``: leave out writes the device already holds.
        False when it failed (counted on the link)."""
        async with self.lock:
            now = self.clock()
            try:
                if trim:
                    plan = self.device.plan_update(cmd, now, carry_heartbeat=False)
                else:
                    plan = self.device.plan_command(cmd)
            except HalError as exc:
                self.link.failed(exc)
                return False
            try:
                await self.send(plan, now)
            except HalError:
                return False
        return True

    async def write_plan(self, plan: WritePlan, now: datetime) -> bool:
        """Write a ready plan (a heartbeat); False when it failed (counted on the link)."""
        async with self.lock:
            try:
                await self.send(plan, now)
            except HalError:
                return False
        return True


class SiteShared:
    """The pieces of one site every part uses (see the module doc)."""

    def __init__(self, site: SiteConfig, device: SiteDevice, clock: Callable[[], datetime]) -> None:
        self.site = site
        self.device = device
        self.clock = clock
        self.link = Link(site.host, site.port, site.unit_id)
        self.path = WritePath(device, self.link, clock)
        self.setpoint = Setpoint()
        self.timing = ResponseTiming(
            time_constant_s=site.response_time_constant_s,
            dead_time_s=site.response_dead_time_s,
            tolerance_kw=site.response_tolerance_kw,
        )
        self.identity: Identity | None = None
        self.telemetry: Telemetry | None = None
        self.limits: PowerLimits | None = None

    def live_limits(self) -> PowerLimits:
        """The site's bounds now: config, rated power, BMS limits and SoC reserve."""
        tel = self.telemetry
        live = LiveLimits(
            soc_pct=tel.soc_pct if tel else None,
            bms_max_charge_kw=tel.max_charge_kw if tel else None,
            bms_max_discharge_kw=tel.max_discharge_kw if tel else None,
        )
        rated = self.identity.rated_power_kw if self.identity else None
        return power_limits(self.site, live, rated, rated)

    def battery_kw(self) -> float:
        """Battery power in the latest sample (0 when unknown)."""
        tel = self.telemetry
        return tel.battery_power_kw if tel and tel.battery_power_kw is not None else 0.0

    def safe_command(self) -> Command:
        """What the site falls back to: the OEM's self-consumption, or zero power held."""
        if self.site.safe_mode is SafeMode.SELF_CONSUMPTION:
            return Command.safe_mode()
        return Command.set_power(0.0)  # STANDBY: hold zero

    def link_state(self) -> str:
        return self.link.state(polled=self.telemetry is not None)
