"""What a site's three parts share, in one explicit object: latest readings, what is in force
and the one write path.

The command pipeline (:mod:`edge.bridge.commands`), the telemetry loop
(:mod:`edge.bridge.telemetry`) and the reserve loop (:mod:`edge.bridge.reserve`) each own their
own state; this is all they have in common:

* the site's config, its device (HAL), the Modbus link's health and the clock;
* the latest identity, telemetry sample and power limits (the telemetry loop polls them, the
  command pipeline reads them for its gate and read-back), and what they give: the bounds
  (battery, inverter, grid connection), the energy room and the baseline;
* :class:`Setpoint`: what the site was told to hold (what is in force: a predetermined
  setpoint, the armed products, the orders; the newest command among them; the last power
  written);
* :class:`WritePath`: the only way to the device's registers, one plan at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from contract.enums import DeviceState
from edge.bridge.baseline import Baseline, baseline, scheduled_kw
from edge.bridge.bounds import Bounds, EnergyRoom, bounds
from edge.bridge.ceiling import DeliveryWatch
from edge.bridge.config import SafeMode, SiteConfig
from edge.bridge.link import Link
from edge.bridge.model import BridgeCommand, PowerLimits
from edge.bridge.override import ResponseTiming
from edge.bridge.safety import LiveLimits, power_limits
from edge.bridge.scheduler import SiteState
from edge.bridge.stack import InForce
from edge.hal.capabilities import SiteDevice
from edge.hal.errors import HalError
from edge.hal.points import Command, Identity, Telemetry, WritePlan


@dataclass
class Setpoint:
    """What the site holds now: what is in force (:class:`edge.bridge.stack.InForce`), the
    newest command among it or safe mode (:attr:`state`), the last power written (None:
    the OEM's own mode), when it last changed (clock time of the write's acknowledgement) and
    the power before that change: what the battery was following when the target moved, so a
    read-back judges a re-written target from there (:mod:`edge.bridge.observe`)."""

    state: SiteState = field(default_factory=SiteState)
    in_force: InForce = field(default_factory=InForce)
    last_written_kw: float | None = None
    before_last_kw: float | None = None
    changed_at: datetime | None = None

    def wrote(self, kw: float, at: datetime | None) -> None:
        """``kw`` was written as the target, acknowledged at ``at``; a re-write of the same
        power (a re-assertion) is no change."""
        if kw != self.last_written_kw:
            self.before_last_kw, self.last_written_kw = self.last_written_kw, kw
            self.changed_at = at

    def commanded(
        self,
        cmd: BridgeCommand,
        in_force: InForce,
        written_kw: float | None,
        at: datetime | None = None,
    ) -> None:
        """``cmd``'s writes went out (acknowledged at ``at``): ``in_force`` holds now, its power
        ``written_kw`` (None or nothing in force: the site was handed back to its own mode). The
        active command is
        ``cmd`` while it is in force itself (a disarm or an order's end is not: then the
        newest command that is)."""
        if in_force.empty or written_kw is None:
            self.to_safe_mode()
            return
        self.in_force = in_force
        self.wrote(written_kw, at)
        ids = {c.command_id for c in in_force.commands()}
        active = cmd if cmd.command_id in ids else in_force.newest()
        self.state = SiteState(active, in_safe_mode=False)

    def expire(self, now: datetime) -> list[BridgeCommand]:
        """Drop what expired by ``now`` (returned). :attr:`state`'s active command stays the
        newest one still in force; once nothing is, it stays on the last one (expired), so
        :func:`edge.bridge.scheduler.decide` hands the site back."""
        pruned = self.in_force.expire(now)
        if pruned is self.in_force:
            return []
        before, self.in_force = list(self.in_force.commands()), pruned
        newest = pruned.newest()
        if newest is not None:
            self.state = SiteState(newest, in_safe_mode=False)
        kept = {c.command_id for c in pruned.commands()}
        return [c for c in before if c.command_id not in kept]

    def to_safe_mode(self) -> None:
        self.state = SiteState(None, in_safe_mode=True)
        self.in_force = InForce()
        self.last_written_kw = self.before_last_kw = None
        self.changed_at = None


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
        self.last_baseline_kw = 0.0  # the baseline when load or PV is not measured
        self.watch = DeliveryWatch()  # what the battery showed it can deliver (ceilings)

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

    def bounds(self, limits: PowerLimits | None = None) -> Bounds:
        """The battery power range now: battery, inverter, SoC reserve (``limits``, default
        :meth:`live_limits`), grid connection."""
        tel, grid = self.telemetry, self.site.grid
        return bounds(
            self.live_limits() if limits is None else limits,
            import_max_kw=None if grid is None else grid.max_import_kw,
            export_max_kw=None if grid is None else grid.max_export_kw,
            load_kw=tel.load_kw if tel else None,
            pv_kw=tel.pv_power_kw if tel else None,
        )

    def energy(self) -> EnergyRoom:
        """The energy above and below the SoC reserves (capacity from the device, else the
        site config)."""
        tel, site = self.telemetry, self.site
        capacity = tel.capacity_kwh if tel and tel.capacity_kwh else site.battery.capacity_kwh
        return EnergyRoom.of(
            tel.soc_pct if tel else None,
            capacity,
            site.soc_reserve_min_pct,
            site.soc_reserve_max_pct,
        )

    def baseline(
        self, now: datetime, in_force: InForce | None = None, within: Bounds | None = None
    ) -> Baseline:
        """The baseline now (:mod:`edge.bridge.baseline`) with ``in_force``'s predetermined
        setpoint (default: what is in force), within ``within`` (default: :meth:`bounds`)."""
        held = (self.setpoint.in_force if in_force is None else in_force).held
        tel, site = self.telemetry, self.site
        out = baseline(
            self.bounds() if within is None else within,
            setpoint_kw=None if held is None else held.power_kw,
            scheduled=scheduled_kw(site.schedule, site.timezone, now),
            load_kw=tel.load_kw if tel else None,
            pv_kw=tel.pv_power_kw if tel else None,
            last_kw=self.last_baseline_kw,
        )
        self.last_baseline_kw = out.kw
        return out

    def battery_kw(self) -> float:
        """Battery power in the latest sample (0 when unknown)."""
        tel = self.telemetry
        return tel.battery_power_kw if tel and tel.battery_power_kw is not None else 0.0

    def safe_command(self) -> Command:
        """What the site falls back to: the OEM's self-consumption, or zero power held."""
        if self.site.safe_mode is SafeMode.SELF_CONSUMPTION:
            return Command.safe_mode()
        return Command.set_power(0.0)  # STANDBY: hold zero

    def link_state(self) -> DeviceState:
        return self.link.state(polled=self.telemetry is not None)
