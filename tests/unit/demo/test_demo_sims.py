"""Simulated homes of the demo: bridge configs that load, incidents checked, overriding firmware."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from edge.bridge.config import load_config
from flowerhub.demo.fleet import compose_fleet, map_models
from flowerhub.demo.scenario import Incident, IncidentKind, ScenarioError
from flowerhub.demo.sims import (
    DEMO_FUSE_A,
    HOST,
    OverridingFirmware,
    SimFleet,
    reserve_poll_s,
)

SPECS = compose_fleet(6, seed=7, models=map_models())


def test_one_bridge_config_per_oem_matching_the_simulators(tmp_path: Path) -> None:
    fleet = SimFleet(SPECS)
    paths = fleet.write_bridge_configs(tmp_path, telemetry_interval_s=1.0)
    assert [p.name for p in paths] == [
        "bridge-huawei.yaml",
        "bridge-saj.yaml",
        "bridge-sungrow.yaml",
    ]
    seen = set()
    for path in paths:
        config = load_config(path)
        assert config.telemetry_interval_s == 1.0
        for site in config.sites:
            sim = fleet.sims[site.site_id]
            spec = next(s for s in SPECS if s.site_id == site.site_id)
            assert (site.host, site.port, site.oem) == (sim.host, sim.port, spec.oem)
            assert site.battery.max_discharge_kw == spec.max_power_kw
            assert site.response_time_constant_s == sim.battery.params.tau_s
            assert site.reserve_poll_s == reserve_poll_s(sim.rmap.connection.request_gap_s)
            assert site.grid is not None  # a main fuse: no "assumed unlimited" warning
            assert site.grid.max_import_kw == pytest.approx(3 * 230 * DEMO_FUSE_A / 1000)
            assert site.assumptions() == []
            seen.add(site.site_id)
    assert seen == {s.site_id for s in SPECS}


def test_fault_incident_must_name_a_fault_word_of_the_sites_oem() -> None:
    fleet = SimFleet(SPECS)
    fleet.check_incidents(
        [Incident(at_s=1, site=2, kind=IncidentKind.FAULT, point="battery_fault", bit=3)]
    )
    with pytest.raises(ScenarioError, match="huawei, which has no fault word 'battery_fault'"):
        fleet.check_incidents(
            [Incident(at_s=1, site=0, kind=IncidentKind.FAULT, point="battery_fault", bit=3)]
        )


def test_incidents_change_the_simulators() -> None:
    asyncio.run(_incidents())


async def _incidents() -> None:
    fleet = SimFleet(SPECS)
    await fleet.start()
    try:
        _, sim = fleet.by_index(2)
        assert not sim.battery_blocked()
        await fleet.apply(
            Incident(at_s=1, site=2, kind=IncidentKind.FAULT, point="battery_fault", bit=3)
        )
        assert sim.battery_blocked()

        _, sim1 = fleet.by_index(1)
        line = await fleet.apply(Incident(at_s=1, site=1, kind=IncidentKind.OVERRIDE))
        assert isinstance(sim1.firmware, OverridingFirmware)
        assert "ignores remote commands" in line
        state = sim1.state()
        own = max(-state.max_charge_kw, min(state.max_discharge_kw, state.self_consumption_kw))
        sim1.registers.set("app_mode", 3)  # SAJ passive mode: would follow the commands
        sim1.registers.set("passive_enable", 1)
        sim1.registers.set("passive_discharge_power", 500)
        assert sim1.firmware.target_kw(state) == own

        _, sim3 = fleet.by_index(3)
        before = sim3.state().load_kw
        line = await fleet.apply(Incident(at_s=1, site=3, kind=IncidentKind.LOAD, load_kw=6.0))
        assert "a 6 kW load switches on" in line
        assert sim3.state().load_kw == pytest.approx(before + 6.0, abs=0.5)  # profile noise
        line = await fleet.apply(Incident(at_s=2, site=3, kind=IncidentKind.LOAD, load_kw=0.0))
        assert "switches off" in line
        assert sim3.extra_load_kw == 0.0

        await fleet.apply(Incident(at_s=1, site=0, kind=IncidentKind.OFFLINE))
        assert SPECS[0].site_id in fleet.offline
        fleet.set_frequency(49.5)
        assert fleet.by_index(0)[1].frequency_hz == 50.0  # offline homes see nothing
        assert fleet.by_index(3)[1].frequency_hz == 49.5
    finally:
        await fleet.stop()


@pytest.mark.parametrize(
    ("gap_s", "poll_s"),
    [
        (0.0, 0.2),  # an unpaced link: the bridge's own default
        (0.02, 0.2),  # Sungrow LAN
        (0.05, 0.2),  # Huawei
        (0.1, 0.4),  # SAJ: a quarter of its 10 requests/s
        (0.2, 0.8),  # SAJ's slower firmware variant
    ],
)
def test_reserve_fast_loop_leaves_the_link_room_for_telemetry(gap_s: float, poll_s: float) -> None:
    assert reserve_poll_s(gap_s) == pytest.approx(poll_s)


def test_a_simulator_whose_port_was_taken_starts_on_another() -> None:
    fleet = SimFleet(SPECS[:2])
    _, sim = fleet.by_index(1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        sim.port = busy  # as if another process bound the probed port first

        async def run() -> None:
            await fleet.start()
            try:
                assert sim.port != busy
                _, writer = await asyncio.open_connection(HOST, sim.port)
                writer.close()
                await writer.wait_closed()
            finally:
                await fleet.stop()

        asyncio.run(run())
