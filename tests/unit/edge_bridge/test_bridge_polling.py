"""Tiered polling: which points each poll reads (pure, per map), fewer Modbus reads per poll on a
real simulator, full telemetry every poll with honest ages, the fast frequency read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from edge.bridge.droop import fast_write_due
from edge.bridge.polling import TieredReader
from edge.hal.decode import telemetry_points
from edge.hal.device import Device
from edge.hal.planner import POLL_EVERY, due_points, poll_tiers
from edge.hal.points import CanonicalPoint
from edge.hal.registermap import load_all
from edge.hal.transport import ModbusTransport
from edge.sim.server import SimInverter
from edge.testing.harness import free_port

MAPS = load_all()


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


# (oem, register points read every poll, points read every 5th, every 10th, every 30th)
TIERS = [
    ("saj", 1, ["battery_power", "battery_direction", "grid_frequency", "working_mode",
                "app_mode_effect", "grid_power", "grid_direction", "pv_power", "load_power"]),
    ("saj", 5, ["battery_soc"]),
    ("saj", 10, ["charge_power_limit", "discharge_power_limit", "rated_power"]),
    ("saj", 30, ["battery_capacity", "battery_voltage"]),
    ("huawei", 5, ["soc"]),
    ("huawei", 10, ["max_charge_power", "max_discharge_power"]),
    ("huawei", 30, ["rated_capacity"]),
    ("sungrow", 5, ["soc"]),
    ("sungrow", 30, ["battery_capacity"]),
]  # fmt: skip


@pytest.mark.parametrize(("oem", "period", "points"), TIERS)
def test_poll_tiers_per_map(oem: str, period: int, points: list[str]) -> None:
    tiers = poll_tiers(MAPS[oem])
    assert sorted(n for n, p in tiers.items() if p == period) == sorted(points)


@pytest.mark.parametrize("oem", sorted(MAPS))
def test_every_telemetry_point_is_read_and_mode_every_poll(oem: str) -> None:
    rmap = MAPS[oem]
    tiers = poll_tiers(rmap)
    assert set(tiers) == set(telemetry_points(rmap))
    assert all(tiers[r.point] == 1 for r in rmap.mode)
    assert set(due_points(tiers, 0)) == set(tiers)  # the first poll reads everything
    for poll in range(1, 61):
        assert all(poll % tiers[n] == 0 for n in due_points(tiers, poll))


def test_bad_period() -> None:
    with pytest.raises(ValueError, match="poll period"):
        poll_tiers(MAPS["saj"], {**POLL_EVERY, CanonicalPoint.SOC_PCT: 0})


# (last written kW, target kW, deadband kW, s since the last write, write gap s, write now?)
FAST_WRITES = [
    (None, 1.0, 0.05, 10.0, 0.5, True),  # nothing written yet
    (1.0, 1.04, 0.05, 10.0, 0.5, False),  # inside the deadband
    (1.0, 1.05, 0.05, 10.0, 0.5, True),
    (1.0, 3.0, 0.05, 0.3, 0.5, False),  # the map's write gap has not passed
    (1.0, 3.0, 0.05, 0.5, 0.5, True),
    (1.0, -3.0, 0.05, 0.0, 0.0, True),
]


@pytest.mark.parametrize("case", FAST_WRITES)
def test_fast_write_due(case: tuple[float | None, float, float, float, float, bool]) -> None:
    last, target, step, since, gap, due = case
    assert fast_write_due(last, target, step, since, gap) is due


@pytest.mark.parametrize("oem", sorted(MAPS))
def test_tiered_reads_on_a_simulator(oem: str) -> None:
    async def body() -> None:
        rmap = MAPS[oem]
        sim = SimInverter(rmap, port=free_port())
        await sim.start()
        conn = rmap.connection.model_copy(
            update={"connect_settle_s": 0.0, "request_gap_s": 0.0, "write_gap_s": 0.0}
        )
        transport = ModbusTransport(sim.host, sim.port, sim.unit_id, conn)
        device = Device(rmap, transport)
        now = [0.0]
        reader = TieredReader(device, clock=lambda: now[0])
        try:
            whole = await device.read_telemetry()
            full_reads = transport.stats.reads
            first = await reader.read()  # the first poll reads everything
            assert transport.stats.reads - full_reads == full_reads
            assert first.soc_pct == pytest.approx(whole.soc_pct, abs=0.2)
            before = transport.stats.reads
            now[0] = 1.0
            fast = await reader.read()  # poll 1: power, frequency, mode only
            fast_reads = transport.stats.reads - before
            assert fast_reads < full_reads
            # still a full sample: slow points carry their latest value, and say how old
            assert fast.soc_pct == first.soc_pct
            assert fast.capacity_kwh == first.capacity_kwh
            assert fast.battery_power_kw is not None
            ages = reader.ages_s()
            assert ages[CanonicalPoint.FREQUENCY_HZ] == 0.0
            assert ages[CanonicalPoint.SOC_PCT] == 1.0
            assert device.last_telemetry is fast  # plan context sees the live limits
            sim.set_frequency(49.62)
            sim.tick()
            before = transport.stats.reads
            assert await reader.read_frequency() == pytest.approx(49.62)
            assert transport.stats.reads - before == 1
        finally:
            await transport.close()
            await sim.stop()

    run(body)
