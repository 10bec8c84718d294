"""Self-consumption kept: each home three times, in its own mode and armed under the bridge.

Issue 14 measured that arming a reserve cost the homes their self-consumption: the bridge held
every battery at 0 kW while armed and the homes imported 77-82 % of their household load from
the grid. Here every simulated home has twins with the same seed, profile and clock origin
(:class:`edge.sim.server.SimInverter` ``clock_origin``): the same household load and PV at
every instant, the same battery and OEM firmware.

* ``own``: left to its OEM's own self-consumption (no bridge);
* ``armed``: run by the bridge (:class:`edge.bridge.site.SiteController`, real Modbus TCP,
  the production telemetry interval) with FCR-N, FCR-D up and FCR-D down armed at once: the
  baseline is the home's own self-consumption, the reserves ride on top;
* ``held``: the same, but on a predetermined setpoint of 0 kW (a SET_POWER 0 under the arms):
  what the bridge did for every armed home before issue 14, measured in the same run.

All at a steady 50.0 Hz (normal frequency: no activation). Each twin's grid import
(``max(0, -grid)``) and the household load are integrated from the simulators' physical state
every ``sample_s``; :attr:`Kept.extra_fraction` is the extra import of the armed twins over
their own-mode twins as a fraction of the household load (goal <= 2 %),
:attr:`Kept.held_fraction` the same for the 0 kW twins.

No Kafka: the commands are handed to the site controllers directly, as the consumer does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contract.enums import CommandKind, Product
from contract.records import ReserveArm
from edge.bridge.diskwriter import DiskWriter
from edge.bridge.idempotency import IdempotencyStore
from edge.bridge.model import BridgeCommand
from edge.bridge.outbox import Outbox
from edge.bridge.sink import BridgeTopics, EventSink
from edge.bridge.site import SiteController
from edge.hal.device import Device
from edge.hal.maps import load_all
from edge.hal.transport import ModbusTransport
from edge.sim.battery import BatteryParams
from edge.sim.firmware import RESPONSE
from edge.sim.server import SimInverter
from edge.testing.harness import SimSpec, free_port, new_command, site_config

#: A Swedish home-battery contract: FCR-N with FCR-D up and down on the same battery (kW).
ARMS = (
    ReserveArm(Product.FCR_N, 1.0, 50.0, 49.9, 0.0, True),
    ReserveArm(Product.FCR_D_UP, 1.5, 49.9, 49.5),
    ReserveArm(Product.FCR_D_DOWN, 1.5, 50.1, 50.5),
)
EVENING_S = 18 * 3600.0  # load above PV: the battery covers the home (the demo's hour)
TICK_S = 0.25  # the demo's battery step between Modbus events
FUSE_A = 16.0  # 3 x 16 A main fuse (the demo's homes)


@dataclass(frozen=True)
class Kept:
    """Integrated over the window, summed over the homes (kWh)."""

    homes: int
    seconds: float
    load_kwh: float
    import_own_kwh: float  # the twins in their own mode
    import_armed_kwh: float  # under the bridge, reserves armed on the home's own baseline
    import_held_kwh: float  # under the bridge, reserves armed on a 0 kW setpoint
    armed_kw: float  # capacity armed per home, all products (as accepted)

    @property
    def extra_fraction(self) -> float:
        """Extra grid import caused by being armed, as a fraction of the household load."""
        return (self.import_armed_kwh - self.import_own_kwh) / self.load_kwh

    @property
    def held_fraction(self) -> float:
        """The same for homes held at 0 kW while armed (the bridge before issue 14)."""
        return (self.import_held_kwh - self.import_own_kwh) / self.load_kwh


def _twin(oem: str, seed: int, origin: float) -> SimInverter:
    tau, dead = RESPONSE[oem]
    return SimInverter(
        load_all()[oem],
        port=free_port(),
        seed=seed,
        battery=BatteryParams(tau_s=tau, dead_time_s=dead),
        start_time_of_day_s=EVENING_S,
        tick_s=TICK_S,
        clock_origin=origin,
    )


def _import_kw(sim: SimInverter) -> float:
    return max(0.0, -sim.state().grid_kw)


@dataclass
class _Bridged:
    """The site controllers of the bridged twins and everything they hold open."""

    state: Path
    telemetry_interval_s: float
    sites: list[SiteController] = field(default_factory=list)
    transports: list[ModbusTransport] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = IdempotencyStore(self.state / "idem.sqlite")
        self.outbox = Outbox(self.state / "outbox", defer_sync=True)
        self.writer = DiskWriter(self.store, self.outbox)
        self.sink = EventSink(self.outbox, BridgeTopics())

    def add(self, site_id: str, sim: SimInverter, phase_s: float) -> SiteController:
        rmap = sim.rmap
        cfg = site_config(SimSpec(site_id, rmap.oem, site={"grid": {"fuse_a": FUSE_A}}), sim)
        transport = ModbusTransport(sim.host, sim.port, sim.unit_id, rmap.connection)
        self.transports.append(transport)
        device = Device(rmap, transport, link=cfg.link, policy=cfg.control_policy())
        ctl = SiteController(
            cfg,
            device,
            writer=self.writer,
            sink=self.sink,
            telemetry_interval_s=self.telemetry_interval_s,
        )
        self.sites.append(ctl)
        self.tasks += [
            asyncio.create_task(ctl.run_commands()),
            asyncio.create_task(ctl.run_telemetry(phase_s)),
            asyncio.create_task(ctl.run_reserve()),
        ]
        return ctl

    async def close(self) -> None:
        for ctl in self.sites:
            await ctl.stop_observers()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for transport in self.transports:
            await transport.close()
        await self.writer.aclose()
        self.store.close()
        self.outbox.close()


def _commands(site_id: str, valid_s: float, held: bool) -> list[BridgeCommand]:
    kind = CommandKind.ARM_RESERVE
    arms = [new_command(site_id, kind, reserve=arm, valid_s=valid_s) for arm in ARMS]
    if not held:
        return arms
    return [new_command(site_id, CommandKind.SET_POWER, 0.0, valid_s=valid_s), *arms]


async def measure(
    state: Path,
    oems: Sequence[str],
    *,
    seconds: float,
    telemetry_interval_s: float = 1.0,
    sample_s: float = 0.1,
) -> Kept:
    """Arm every home's bridged twins and integrate every twin's import for ``seconds``."""
    origin = time.monotonic()
    own, armed, held = ([_twin(oem, i, origin) for i, oem in enumerate(oems)] for _ in range(3))
    sims = [*own, *armed, *held]
    bridged = _Bridged(state, telemetry_interval_s)
    try:
        for sim in sims:
            await sim.start()
        step = telemetry_interval_s / (2 * len(oems))
        armed_sites = [bridged.add(f"armed-{i}", s, 2 * i * step) for i, s in enumerate(armed)]
        held_sites = [bridged.add(f"held-{i}", s, (2 * i + 1) * step) for i, s in enumerate(held)]
        for ctl in bridged.sites:  # the first poll: the bridge knows the home before arming
            while ctl.shared.telemetry is None:  # noqa: ASYNC110  # polled by its own task
                await asyncio.sleep(0.05)
        for ctl in bridged.sites:
            for cmd in _commands(ctl.site.site_id, seconds + 60.0, ctl in held_sites):
                ctl.submit(cmd)
        loop = asyncio.get_running_loop()
        load = imp_own = imp_armed = imp_held = 0.0
        start = last = loop.time()
        while last - start < seconds:
            await asyncio.sleep(sample_s)
            now = loop.time()
            dt_h, last = (now - last) / 3600.0, now
            load += dt_h * sum(s.state().load_kw for s in own)
            imp_own += dt_h * sum(_import_kw(s) for s in own)
            imp_armed += dt_h * sum(_import_kw(s) for s in armed)
            imp_held += dt_h * sum(_import_kw(s) for s in held)
        kw = [
            sum(c.shared.setpoint.in_force.armed_kw(a.product) for a in ARMS) for c in armed_sites
        ]
        return Kept(len(oems), seconds, load, imp_own, imp_armed, imp_held, sum(kw) / len(kw))
    finally:
        await bridged.close()
        for sim in sims:
            await sim.stop()
        await asyncio.sleep(0.05)
