"""The demo's standing reserves (ReserveAssignments) and the self-consumption meter."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from contract.codec import decode_as, encode, new_event
from contract.enums import Product
from contract.products import curve_for
from contract.records import ReserveAssignment
from flowerhub.demo.armed import ImportMeter, arm, assignments, own_mode_kw
from flowerhub.demo.fleet import compose_fleet, map_models
from flowerhub.demo.results import SelfConsumption
from flowerhub.demo.scenario import DEFAULT_SCENARIO, Reserve, load_scenario
from flowerhub.demo.sims import SimFleet

SPECS = compose_fleet(6, seed=7, models=map_models())
T0 = dt.datetime(2026, 12, 5, 18, 0, tzinfo=dt.UTC)


def test_the_default_scenario_arms_one_assignment_per_product_with_its_droop_band() -> None:
    reserves = load_scenario(DEFAULT_SCENARIO).reserves
    fields = assignments(
        reserves, fleet_id="f", sites=60, valid_from=T0, valid_until=T0 + dt.timedelta(hours=1)
    )
    assert [f["product"] for f in fields] == ["FCR_N", "FCR_D_UP", "FCR_D_DOWN"]
    for reserve, f in zip(reserves, fields, strict=True):
        # a valid record of the contract, as the producer encodes it
        asg = ReserveAssignment.from_record(
            decode_as(
                "ReserveAssignment",
                encode("ReserveAssignment", new_event("ReserveAssignment", **f)),
            )
        )
        curve = curve_for(reserve.product)
        assert (asg.f_start_hz, asg.f_full_hz) == (curve.f_start_hz, curve.f_full_hz)
        assert asg.capacity_mw == pytest.approx(reserve.capacity_kw_per_site * 60 / 1000.0)
        assert asg.deadband_hz == 0.0
    assert len({f["assignment_id"] for f in fields}) == 3


class Recorder:
    """Collects what the demo would send (the Kafka producer's part is the integration test)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, event: str, **fields: Any) -> dict[str, Any]:
        record = new_event(event, **fields)
        self.sent.append((event, record))
        return record


def test_arm_sends_the_assignments_valid_past_the_scenario() -> None:
    recorder, lines = Recorder(), list[str]()
    reserves = [Reserve(product=Product.FCR_D_DOWN, capacity_kw_per_site=1.0)]
    sent = asyncio.run(
        arm(reserves, recorder, fleet_id="f", sites=6, duration_s=100.0, progress=lines.append)
    )
    ((event, record),) = recorder.sent
    assert event == "ReserveAssignment"
    assert sent == [record]
    span = (record["valid_until"] - record["valid_from"]).total_seconds()
    assert span >= 100.0
    assert lines == ["armed on every home at once: FCR_D_DOWN 0.006 MW"]
    assert (
        asyncio.run(arm([], recorder, fleet_id="f", sites=6, duration_s=1.0, progress=print)) == []
    )


def _homes() -> SimFleet:
    fleet = SimFleet(SPECS)
    for sim in fleet.sims.values():
        sim.advance(0.0)  # the first tick: the battery in its own mode's first step
    return fleet


def test_homes_in_their_own_mode_import_nothing_extra() -> None:
    fleet = _homes()
    meter = ImportMeter()
    assert meter.result() is None
    for _ in range(20):
        for sim in fleet.sims.values():
            sim.battery.power_kw = own_mode_kw(sim)
        meter.sample(fleet.sims.values(), 0.5)
    meter.sample(fleet.sims.values(), 0.0)  # nothing to add
    figure = meter.result()
    assert figure is not None
    assert (figure.homes, figure.seconds) == (6, 10.0)
    assert figure.load_kwh > 0.0
    assert figure.extra_pct == pytest.approx(0.0, abs=0.5)


def test_homes_held_at_0_kw_while_armed_import_what_their_battery_covered() -> None:
    """What the bridge did before issue 14: every armed battery held at 0 kW."""
    fleet = _homes()
    meter = ImportMeter()
    for _ in range(20):
        for sim in fleet.sims.values():
            sim.battery.power_kw = 0.0
        meter.sample(fleet.sims.values(), 0.5)
    figure = meter.result()
    assert figure is not None
    covered = sum(max(0.0, own_mode_kw(s)) for s in fleet.sims.values())
    load = sum(s.state().load_kw for s in fleet.sims.values())
    assert figure.extra_pct == pytest.approx(100.0 * covered / load, rel=0.05)
    assert figure.extra_pct > 50.0
    assert "extra grid import" in figure.describe()


def test_the_own_mode_twin_takes_the_oems_response_time_after_a_load_step() -> None:
    fleet = _homes()
    meter = ImportMeter()
    meter.begin()
    meter.sample(fleet.sims.values(), 0.25)
    sim = fleet.sims[SPECS[1].site_id]
    sim.switch_load(2.0)
    twin = meter.shadows[id(sim)]
    before = twin.power_kw
    meter.sample([sim], 0.25)
    assert twin.power_kw - before < 2.0  # still on its way (tau, dead time)
    for _ in range(60):
        meter.sample([sim], 0.25)
    assert twin.power_kw == pytest.approx(own_mode_kw(sim), abs=0.05)
    meter.begin()
    assert meter.shadows == {}


def test_figure_of_no_load_is_zero() -> None:
    figure = SelfConsumption(homes=1, seconds=1.0, load_kwh=0.0, import_kwh=0.0, own_import_kwh=0.0)
    assert figure.extra_pct == 0.0
