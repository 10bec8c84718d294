"""What the bridge asks of a device, against a real simulated inverter over Modbus TCP: a power
update writes only what changed, a refused write leaves nothing trusted (the next update
writes the whole sequence), a poll keeps the plan context live; opening a device by address
and finding it again by serial after it moved."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from edge.hal.capabilities import SiteDevice
from edge.hal.connect import open_device
from edge.hal.control import ControlPolicy
from edge.hal.device import Device
from edge.hal.errors import ModbusExceptionError
from edge.hal.maps import load_all
from edge.hal.points import Command
from edge.hal.registermap import RegisterMap
from edge.hal.transport import ModbusTransport
from edge.sim.server import SimInverter
from edge.testing.harness import free_port

MAPS = load_all()
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def quick(rmap: RegisterMap) -> RegisterMap:
    """The map with its pacing off (the wire, not the OEM's gaps, is what these tests need)."""
    conn = rmap.connection.model_copy(
        update={"connect_settle_s": 0.0, "request_gap_s": 0.0, "write_gap_s": 0.0}
    )
    return rmap.model_copy(update={"connection": conn})


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


def test_updates_write_what_changed_and_a_refusal_forgets() -> None:
    rmap = quick(MAPS["huawei"])
    name = "forcible_discharge_power"
    narrow = rmap.points[name].model_copy(update={"max": 2500.0})  # the inverter takes <= 2.5 kW
    sim_map = rmap.model_copy(update={"points": {**rmap.points, name: narrow}})

    async def body() -> None:
        sim = SimInverter(sim_map, port=free_port())
        await sim.start()
        transport = ModbusTransport(sim.host, sim.port, sim.unit_id, rmap.connection)
        device = Device(rmap, transport, policy=ControlPolicy(hold_s=30.0))
        assert isinstance(device, SiteDevice)
        try:
            tel = await device.read_due_telemetry()
            assert device.last_telemetry is tel  # the plan context sees the live limits
            whole = device.plan_update(Command.set_power(2.0), NOW, carry_heartbeat=True)
            assert whole == device.plan_command(Command.set_power(2.0))
            await device.write(whole, NOW)
            update = device.plan_update(Command.set_power(1.0), NOW, carry_heartbeat=True)
            assert [w.points for w in update.writes] == [(name,)]
            await device.write(update, NOW)
            assert len(sim.write_log) == len(whole.writes) + 1
            refused = device.plan_update(Command.set_power(3.0), NOW, carry_heartbeat=True)
            with pytest.raises(ModbusExceptionError):
                await device.write(refused, NOW)
            again = device.plan_update(Command.set_power(1.5), NOW, carry_heartbeat=True)
            assert again == device.plan_command(Command.set_power(1.5))  # nothing trusted
            await device.write(again, NOW)
            device.forget_held()  # e.g. the inverter left remote control
            same = device.plan_update(Command.set_power(1.5), NOW, carry_heartbeat=True)
            assert same == again
            assert device.write_gap_s == rmap.connection.write_gap_s
            assert device.plan_keepalive(NOW) is None  # Huawei: no heartbeat register
        finally:
            await transport.close()
            await sim.stop()

    run(body)


def test_open_device_and_find_it_again_by_serial() -> None:
    rmap = quick(MAPS["sungrow"])

    async def body() -> None:
        sim = SimInverter(rmap, port=free_port())
        await sim.start()
        moved = free_port()
        opened = open_device(
            rmap,
            sim.host,
            sim.port,
            sim.unit_id,
            policy=ControlPolicy(heartbeat_s=2.0),
            rediscover_hosts=sim.host,
            rediscover_ports=[moved],
        )
        try:
            ident = await opened.device.identify()
            assert ident.serial == sim.serial
            assert opened.device.plan_keepalive(NOW) is not None  # Sungrow: a heartbeat, due
            assert opened.rediscover is not None
            await sim.move_to(sim.host, moved)  # DHCP gave the dongle another address
            assert await opened.rediscover(sim.serial) == (sim.host, moved)
            assert (await opened.device.identify()).serial == sim.serial  # retargeted
            assert await opened.rediscover("no-such-serial") is None
        finally:
            await opened.close()
            await sim.stop()
        plain = open_device(rmap, "127.0.0.1", 502, 1)
        assert plain.rediscover is None  # no hosts to scan in the site config
        await plain.close()

    run(body)
