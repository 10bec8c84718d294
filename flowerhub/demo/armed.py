"""The demo's standing reserves and the self-consumption figure of the armed homes.

A scenario's ``reserves`` (``flowerhub.demo.scenario.Reserve``) are what a Swedish home
battery is sold as: FCR-N, FCR-D up and FCR-D down on the same battery at once. Each is one
``ReserveAssignment`` (:func:`assignments`) with the product's droop band from
``contract.products`` (the allocator arms every home's share of it on the home's own
baseline), valid from the scenario start to its end.

Self-consumption kept (issue 14): while the homes are armed at a steady frequency (the
scenario's ``hold`` phases) they must keep covering their own load. :class:`ImportMeter`
integrates, from the simulators' physical state, every online home's household load, its
grid import (``max(0, load - PV - battery)``) and the import it would have in its OEM's own
self-consumption mode: a shadow battery per home (``edge.sim.battery.BatteryModel`` with the
home's parameters: limits, SoC, the OEM's response time and dead time) following
``load - PV`` within its limits, as the firmware does with no remote control
(``edge.sim.firmware``), started at that target when a hold phase begins.
:attr:`SelfConsumption.extra_pct` is the extra import as a percentage of the household load
(goal <= 2 %, issue 14; the demo measured 77-82 % when arming held every battery at 0 kW).
What remains is the bridge's tracking of the load: 1 s telemetry, a command round, and the
same response time once more.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from contract.enums import Product
from contract.products import curve_for
from edge.sim.battery import BatteryModel
from edge.sim.server import SimInverter
from flowerhub.demo.results import SelfConsumption
from flowerhub.demo.scenario import HoldPhase, Reserve
from flowerhub.demo.sims import SimFleet

SAMPLE_S = 0.5  # the import meter's step while a hold phase plays
# The demo's allocator splits an aFRR/mFRR order with this margin (streams
# ``AllocatorConfig.order_margin``): the bridges track each home's moving baseline with a
# write deadband (``min_step_kw``: 0.05 kW by default, the demo's 0.02), which left the
# 6-home demo fleet 1-3 % short of its orders on the evening's rising load (2.93-2.97 kW of
# 3.0; 2.95-3.01 kW of 3.09 with a 3 % margin), and the audit's "full" is 100 % of the order
# with no tolerance (analytics.rules.frr).
ORDER_MARGIN = 0.05


def worker_environment() -> dict[str, str]:
    """The streams worker's settings the demo sets (pydantic-settings, ``FLOWERHUB_``)."""
    return {"FLOWERHUB_ALLOCATOR__ORDER_MARGIN": f"{ORDER_MARGIN:g}"}


class Sender(Protocol):
    async def send(self, event: str, **fields: Any) -> dict[str, Any]: ...


def assignments(
    reserves: Iterable[Reserve],
    *,
    fleet_id: str,
    sites: int,
    valid_from: dt.datetime,
    valid_until: dt.datetime,
) -> list[dict[str, Any]]:
    """The ``ReserveAssignment`` fields of each standing reserve (capacity for ``sites``)."""
    out = []
    for reserve in reserves:
        curve = curve_for(reserve.product)
        assert curve.f_start_hz is not None  # noqa: S101  # FCR curves are frequency-activated
        assert curve.f_full_hz is not None  # noqa: S101  # idem
        out.append(
            {
                "fleet_id": fleet_id,
                "assignment_id": f"demo-armed-{reserve.product.value.lower()}-"
                f"{uuid.uuid4().hex[:8]}",
                "product": reserve.product.value,
                "capacity_mw": round(reserve.capacity_kw_per_site * sites / 1000.0, 6),
                "valid_from": valid_from,
                "valid_until": valid_until,
                "f_start_hz": curve.f_start_hz,
                "f_full_hz": curve.f_full_hz,
                "deadband_hz": 0.0,
            }
        )
    return out


def own_mode_kw(sim: SimInverter) -> float:
    """The home's battery target in its OEM's own self-consumption mode now (kW)."""
    state = sim.state()
    if state.faulted:
        return 0.0
    return sim.battery.clamp(state.self_consumption_kw)


def armed_kw(reserves: Iterable[Reserve], sites: int) -> dict[Product, float]:
    """The standing reserves' fleet capacity per product (kW)."""
    return {r.product: r.capacity_kw_per_site * sites for r in reserves}


def shadow(sim: SimInverter) -> BatteryModel:
    """A battery like the home's, in its own mode's steady state now."""
    target = own_mode_kw(sim)
    return BatteryModel(
        sim.battery.params, soc_pct=sim.battery.soc_pct, power_kw=target, _active_target=target
    )


class ImportMeter:
    """Integrates load, grid import and own-mode import of the homes given at each sample."""

    def __init__(self) -> None:
        self.load_kwh = 0.0
        self.import_kwh = 0.0
        self.own_import_kwh = 0.0
        self.seconds = 0.0
        self.homes = 0
        self.shadows: dict[int, BatteryModel] = {}  # id(sim) -> its own-mode twin

    def begin(self) -> None:
        """A new stretch of samples: the shadow batteries start again at their targets."""
        self.shadows.clear()

    def sample(self, sims: Iterable[SimInverter], dt_s: float) -> None:
        """Add ``dt_s`` seconds at the homes' present state (the shadows step ``dt_s``)."""
        if dt_s <= 0.0:
            return
        h = dt_s / 3600.0
        homes = 0
        for sim in sims:
            state = sim.state()
            homes += 1
            own = self.shadows.get(id(sim))
            if own is None:
                own = self.shadows[id(sim)] = shadow(sim)
            own.step(dt_s, own_mode_kw(sim))
            self.load_kwh += h * state.load_kw
            self.import_kwh += h * max(0.0, -state.grid_kw)
            self.own_import_kwh += h * max(0.0, -(state.pv_kw + own.power_kw - state.load_kw))
        self.seconds += dt_s
        self.homes = max(self.homes, homes)

    def result(self) -> SelfConsumption | None:
        """The figure so far; None before any sample."""
        if self.seconds == 0.0:
            return None
        return SelfConsumption(
            homes=self.homes,
            seconds=self.seconds,
            load_kwh=self.load_kwh,
            import_kwh=self.import_kwh,
            own_import_kwh=self.own_import_kwh,
        )


async def arm(
    reserves: Iterable[Reserve],
    sender: Sender,
    *,
    fleet_id: str,
    sites: int,
    duration_s: float,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Send the standing reserves' assignments, valid for ``duration_s`` from now (plus the
    time the children take to stop: the homes stay armed to the scenario's last sample)."""
    start = dt.datetime.now(dt.UTC)
    fields = assignments(
        reserves,
        fleet_id=fleet_id,
        sites=sites,
        valid_from=start,
        valid_until=start + dt.timedelta(seconds=duration_s + 30.0),
    )
    sent = [await sender.send("ReserveAssignment", **f) for f in fields]
    if sent:
        armed = ", ".join(f"{f['product']} {f['capacity_mw']:.3f} MW" for f in fields)
        progress(f"armed on every home at once: {armed}")
    return sent


async def hold(
    phase: HoldPhase,
    fleet: SimFleet,
    meter: ImportMeter,
    progress: Callable[[str], None],
    speed: float,
) -> None:
    """Hold ``phase.frequency_hz`` for the phase, sampling the homes' import into ``meter``."""
    fleet.set_frequency(phase.frequency_hz)
    progress(f"phase {phase.name}: {phase.frequency_hz:.2f} Hz held, nothing activated")
    end = time.monotonic() + max(0.0, phase.duration_s / speed)
    last = time.monotonic()
    meter.begin()
    while (now := time.monotonic()) < end:
        online = [s for k, s in fleet.sims.items() if k not in fleet.offline]
        meter.sample(online, now - last)
        last = now
        await asyncio.sleep(min(SAMPLE_S, max(0.0, end - now)))
    figure = meter.result()
    if figure is not None:
        progress(f"  {phase.name}: {figure.describe()}")
