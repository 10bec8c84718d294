"""Tiered polling: which points each poll reads (pure, per map), the polling state's due sets,
kept values, ages and variant switch (pure), fewer Modbus reads per poll through the Device on a
real simulator, full telemetry every poll with honest ages, the fast frequency read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from edge.hal.decode import Value, telemetry_points
from edge.hal.device import Device
from edge.hal.maps import load_all
from edge.hal.planner import POLL_EVERY, due_points, poll_tiers
from edge.hal.points import CanonicalPoint
from edge.hal.tiers import TieredPolling
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


def fake_values(names: list[str], value: float = 1.0) -> dict[str, Value]:
    """Values as a read would give them (numbers only: what matters here is which were read)."""
    return dict.fromkeys(names, value)


# (oem, poll number, points due beyond the every-poll tier)
DUE = [
    ("huawei", 1, []),
    ("huawei", 5, ["soc"]),
    ("huawei", 10, ["soc", "max_charge_power", "max_discharge_power"]),
    ("huawei", 30, ["soc", "max_charge_power", "max_discharge_power", "rated_capacity"]),
    ("sungrow", 7, []),
    ("sungrow", 15, ["soc"]),
    ("saj", 20, ["battery_soc", "charge_power_limit", "discharge_power_limit", "rated_power"]),
]


@pytest.mark.parametrize(("oem", "poll", "slow"), DUE)
def test_polling_reads_the_due_tier(oem: str, poll: int, slow: list[str]) -> None:
    rmap = MAPS[oem]
    tiers = poll_tiers(rmap)
    fast = sorted(n for n, p in tiers.items() if p == 1)
    polling = TieredPolling()
    assert sorted(polling.due(rmap)) == sorted(tiers)  # nothing read yet: everything
    polling.polled(rmap, fake_values(polling.due(rmap)))
    while polling.polls < poll:
        polling.polled(rmap, fake_values(polling.due(rmap)))
    assert sorted(polling.due(rmap)) == sorted(fast + slow)


def test_a_point_never_read_is_due_until_it_is() -> None:
    rmap = MAPS["huawei"]
    polling = TieredPolling()
    first = polling.due(rmap)
    polling.polled(rmap, fake_values([n for n in first if n != "soc"]))  # soc's read got lost
    assert "soc" in polling.due(rmap)  # poll 1 would not read it, but it has no value yet


def test_values_carry_over_and_ages_say_how_old() -> None:
    rmap = MAPS["sungrow"]
    now = [100.0]
    polling = TieredPolling(clock=lambda: now[0])
    assert polling.ages_s() == {}
    tel = polling.polled(rmap, fake_values(polling.due(rmap), 40.0))
    assert tel.soc_pct == 40.0
    now[0] = 103.0
    tel = polling.polled(rmap, fake_values(polling.due(rmap), 45.0))  # poll 1: no soc
    assert tel.soc_pct == 40.0  # the latest value, still in the sample
    ages = polling.ages_s()
    assert ages[CanonicalPoint.SOC_PCT] == 3.0
    assert ages[CanonicalPoint.FREQUENCY_HZ] == 0.0
    now[0] = 104.0
    names = polling.frequency_points(rmap)
    assert names
    assert set(names) <= set(poll_tiers(rmap))
    assert polling.frequency(rmap, fake_values(names, 49.9)) == pytest.approx(49.9)
    assert polling.ages_s()[CanonicalPoint.FREQUENCY_HZ] == 0.0  # the fast read counts
    assert polling.polls == 2  # a frequency read is not a poll


def test_another_map_starts_over() -> None:
    """identify() switched to a firmware variant: a new map object, read whole again."""
    rmap = MAPS["huawei"]
    polling = TieredPolling()
    polling.polled(rmap, fake_values(polling.due(rmap)))
    variant = rmap.model_copy()
    assert sorted(polling.due(variant)) == sorted(poll_tiers(variant))
    assert polling.polls == 0
    # a frequency read of the old map (in flight across the switch) is not kept
    polling.frequency(rmap, fake_values(polling.frequency_points(rmap), 49.0))
    assert CanonicalPoint.FREQUENCY_HZ not in polling.ages_s()


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
        device.polling = TieredPolling(clock=lambda: now[0])
        try:
            whole = await device.read_telemetry()
            full_reads = transport.stats.reads
            first = await device.read_due_telemetry()  # the first poll reads everything
            assert transport.stats.reads - full_reads == full_reads
            assert first.soc_pct == pytest.approx(whole.soc_pct, abs=0.2)
            before = transport.stats.reads
            now[0] = 1.0
            fast = await device.read_due_telemetry()  # poll 1: power, frequency, mode only
            fast_reads = transport.stats.reads - before
            assert fast_reads < full_reads
            # still a full sample: slow points carry their latest value, and say how old
            assert fast.soc_pct == first.soc_pct
            assert fast.capacity_kwh == first.capacity_kwh
            assert fast.battery_power_kw is not None
            ages = device.telemetry_ages_s()
            assert ages[CanonicalPoint.FREQUENCY_HZ] == 0.0
            assert ages[CanonicalPoint.SOC_PCT] == 1.0
            assert device.last_telemetry is fast  # plan context sees the live limits
            sim.set_frequency(49.62)
            sim.tick()
            before = transport.stats.reads
            assert await device.read_frequency() == pytest.approx(49.62)
            assert transport.stats.reads - before == 1
        finally:
            await transport.close()
            await sim.stop()

    run(body)
