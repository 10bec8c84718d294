"""The reserve loop against a real simulated inverter (Modbus TCP, no broker): the target is the
baseline in force (here a SET_POWER's setpoint) plus the armed response; a fast sample writes it
when it moved past the deadband and the map's write gap has passed; the poll enforces it too
(and the setpoint alone once the arm expired); the loop runs only while a reserve is armed and
its arm command is in force."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contract.enums import CommandKind, Product
from contract.records import ReserveArm
from edge.bridge.bounds import EnergyRoom
from edge.bridge.effects import Room, effect
from edge.bridge.reserve import ReserveLoop
from edge.bridge.shared import SiteShared
from edge.hal.device import Device
from edge.hal.maps import load_all
from edge.hal.transport import ModbusTransport
from edge.sim.server import SimInverter
from edge.testing.harness import SimSpec, free_port, new_command, site_config

FCRD_UP = ReserveArm(Product.FCR_D_UP, 4.0, 49.9, 49.5)
BASE_KW = 1.0


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


@asynccontextmanager
async def armed_site() -> AsyncIterator[tuple[SiteShared, ReserveLoop, SimInverter]]:
    """A Huawei site holding BASE_KW with FCR-D up armed (write gap 0.1 s, other pacing off)."""
    rmap = load_all()["huawei"]
    conn = rmap.connection.model_copy(update={"connect_settle_s": 0.0, "request_gap_s": 0.0})
    rmap = rmap.model_copy(update={"connection": conn})
    sim = SimInverter(rmap, port=free_port())
    await sim.start()
    transport = ModbusTransport(sim.host, sim.port, sim.unit_id, conn)
    shared = SiteShared(site_config(SimSpec("r", "huawei"), sim), Device(rmap, transport), _now)
    reserve = ReserveLoop(shared)
    try:
        shared.telemetry = await shared.device.read_due_telemetry()
        shared.limits = shared.live_limits()
        now = _now()
        setpoint = new_command("r", CommandKind.SET_POWER, BASE_KW, valid_s=120.0, now=now)
        arm = new_command("r", CommandKind.ARM_RESERVE, reserve=FCRD_UP, valid_s=60.0, now=now)
        for cmd in (setpoint, arm):  # as the command pipeline applies them
            room = Room(BASE_KW, shared.bounds(), EnergyRoom())
            eff = effect(cmd, shared.setpoint.in_force, room, now)
            assert not isinstance(eff, str)
            shared.setpoint.commanded(cmd, eff.in_force, BASE_KW)
        yield shared, reserve, sim
    finally:
        await transport.close()
        await sim.stop()


def _now() -> datetime:
    return datetime.now(UTC)


def test_fast_sample_writes_base_plus_response_when_due() -> None:
    async def body() -> None:
        async with armed_site() as (shared, reserve, sim):
            sim.set_frequency(49.7)  # half-way: 2 kW up on top of the base
            sim.tick()
            await reserve.step(1e9)
            assert shared.setpoint.last_written_kw == pytest.approx(BASE_KW + 2.0)
            assert reserve.droop_writes == 1
            written = len(sim.write_log)
            await reserve.step(1e9)  # the same frequency: inside the deadband
            assert len(sim.write_log) == written
            sim.set_frequency(49.5)  # full activation
            sim.tick()
            gap = shared.device.write_gap_s
            assert gap > 0
            await reserve.step(shared.path.written_mono + gap / 2)  # still inside the gap
            assert shared.setpoint.last_written_kw == pytest.approx(BASE_KW + 2.0)
            await reserve.step(shared.path.written_mono + gap + 1e-6)  # the gap has passed
            assert shared.setpoint.last_written_kw == pytest.approx(BASE_KW + 4.0)
            assert reserve.droop_writes == 2
            shared.setpoint.to_safe_mode()  # a safe site never gets droop writes
            sim.set_frequency(49.9)
            sim.tick()
            await reserve.step(1e9)
            assert reserve.droop_writes == 2

    run(body)


def test_poll_enforces_the_target_only_while_armed() -> None:
    async def body() -> None:
        async with armed_site() as (shared, reserve, sim):
            now = _now()
            assert shared.setpoint.in_force.first_armed() is Product.FCR_D_UP
            await reserve.enforce(now, 49.7)
            assert shared.setpoint.last_written_kw == pytest.approx(BASE_KW + 2.0)
            written = len(sim.write_log)
            await reserve.enforce(now, 49.702)  # 0.02 kW less: below min_step_kw
            assert len(sim.write_log) == written
            later = now + timedelta(seconds=90)
            assert shared.setpoint.expire(later)  # the arm command expired, the setpoint holds
            assert not reserve.armed
            await reserve.enforce(later, 49.5)  # the setpoint alone: back to it, one write
            assert shared.setpoint.last_written_kw == pytest.approx(BASE_KW)
            assert len(sim.write_log) == written + 1
            written = len(sim.write_log)
            assert shared.setpoint.expire(now + timedelta(seconds=3600))  # nothing left
            await reserve.enforce(now + timedelta(seconds=3600), 49.5)
            assert len(sim.write_log) == written
            assert shared.setpoint.in_force.first_armed() is Product.NONE

    run(body)


def test_the_fast_loop_runs_once_the_arm_is_in_force_and_stops_on_disarm() -> None:
    async def body() -> None:
        async with armed_site() as (shared, reserve, sim):
            loop = asyncio.create_task(reserve.run())
            try:
                sim.set_frequency(49.7)
                sim.tick()
                await asyncio.sleep(0.5)
                assert reserve.droop_writes == 0  # armed, but not yet in force: idle
                reserve.in_force()
                for _ in range(100):
                    if reserve.droop_writes:
                        break
                    await asyncio.sleep(0.02)
                assert shared.setpoint.last_written_kw == pytest.approx(BASE_KW + 2.0)
                held = shared.setpoint.in_force.without_arm(Product.FCR_D_UP)  # a disarm applied
                shared.setpoint.in_force = held
                await asyncio.sleep(2 * shared.site.reserve_poll_s)
                written = len(sim.write_log)
                sim.set_frequency(49.5)
                sim.tick()
                await asyncio.sleep(3 * shared.site.reserve_poll_s)
                assert len(sim.write_log) == written  # disarmed: the loop sleeps
                reserve.in_force()  # nothing armed: nothing to wake
                await asyncio.sleep(3 * shared.site.reserve_poll_s)
                assert len(sim.write_log) == written
            finally:
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)

    run(body)
