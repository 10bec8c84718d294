"""What a site's parts share: the setpoint in force after each kind of command (table), the
write path against a real simulated inverter (one plan at a time, a failed write counted on
the link and reported, trimmed droop writes), and the keep-alive's re-assert decision (table)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from edge.bridge.keepalive import Reassert, reassert_due
from edge.bridge.link import REASSERT_MIN_S
from edge.bridge.model import Kind, Product, ReserveParams
from edge.bridge.shared import Setpoint, SiteShared
from edge.hal.device import Device
from edge.hal.maps import load_all
from edge.hal.points import Command, Mode, Telemetry
from edge.hal.transport import ModbusTransport
from edge.sim.server import SimInverter
from edge.testing.harness import SimSpec, free_port, new_command, site_config

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ARM = ReserveParams(Product.FCR_D_UP, 4.0, 49.9, 49.5)


def command(kind: Kind, kw: float | None = None) -> Any:
    return new_command("s", kind, kw, reserve=ARM if kind is Kind.ARM_RESERVE else None, now=T0)


# (command kind, power its writes hold, base kW after, last written kW after, in safe mode)
COMMANDED = [
    (Kind.SET_POWER, 3.0, 3.0, 3.0, False),
    (Kind.STOP, 0.0, 0.0, 0.0, False),  # zero held under remote control
    (Kind.ARM_RESERVE, 4.5, 2.0, 4.5, False),  # base kept, the response on top of it
    (Kind.SAFE_MODE, 0.0, 0.0, None, True),  # the OEM's own mode: nothing written holds
]


@pytest.mark.parametrize(("kind", "written", "base", "last", "safe"), COMMANDED)
def test_setpoint_after_a_command(
    kind: Kind, written: float, base: float, last: float | None, safe: bool
) -> None:
    sp = Setpoint()
    assert sp.state.in_safe_mode  # a site starts in safe mode
    sp.commanded(command(Kind.SET_POWER, 2.0), 2.0)
    cmd = command(kind, written if kind is Kind.SET_POWER else None)
    sp.commanded(cmd, written)
    assert (sp.base_kw, sp.last_written_kw, sp.state.in_safe_mode) == (base, last, safe)
    assert sp.state.active is (None if safe else cmd)
    sp.to_safe_mode()
    assert (sp.base_kw, sp.last_written_kw, sp.state.in_safe_mode) == (0.0, None, True)


# (mode, s since written, s since the last re-assert, settle s, refresh s, reason)
REASSERTS = [
    (Mode.FORCED, 10.0, 1e9, 2.0, 600.0, None),  # under control, fresh
    (Mode.SELF_CONSUMPTION, 1.0, 1e9, 2.0, 600.0, None),  # may still be settling
    (Mode.SELF_CONSUMPTION, 3.0, 1e9, 2.0, 600.0, Reassert.LEFT_CONTROL),
    (Mode.REMOTE, 600.0, 1e9, 2.0, 600.0, Reassert.REFRESH),
    (Mode.SELF_CONSUMPTION, 700.0, 1e9, 2.0, 600.0, Reassert.LEFT_CONTROL),  # left wins
    (Mode.SELF_CONSUMPTION, 3.0, REASSERT_MIN_S - 0.1, 2.0, 600.0, None),  # rate limited
    (Mode.SELF_CONSUMPTION, 3.0, REASSERT_MIN_S, 2.0, 600.0, Reassert.LEFT_CONTROL),
]


@pytest.mark.parametrize("case", REASSERTS)
def test_reassert_due(case: tuple[Mode, float, float, float, float, Reassert | None]) -> None:
    mode, written, reasserted, settle, refresh, why = case
    got = reassert_due(mode, written, reasserted, settle_s=settle, refresh_s=refresh)
    assert got is why


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


def test_write_path_one_plan_at_a_time_and_failures_on_the_link() -> None:
    rmap = load_all()["saj"]  # 3 writes, the map's write gap apart, for the first power command
    conn = rmap.connection.model_copy(update={"connect_settle_s": 0.0, "request_gap_s": 0.0})
    quick = rmap.model_copy(update={"connection": conn})

    async def body() -> None:
        sim = SimInverter(quick, port=free_port())
        await sim.start()
        transport = ModbusTransport(sim.host, sim.port, sim.unit_id, conn)
        device = Device(quick, transport)
        now = [T0]
        shared = SiteShared(site_config(SimSpec("s", "saj"), sim), device, lambda: now[0])
        path = shared.path
        try:
            await device.identify()  # SAJ's power is per mille of the rated power
            whole = device.plan_command(Command.set_power(2.0))
            assert len(whole.writes) == 3
            assert conn.write_gap_s == 0.5  # the transport spaces them: the plan takes ~1 s
            # a droop write queued while a command's sequence is going out waits for all of it
            first = asyncio.create_task(path.write(Command.set_power(2.0)))
            await asyncio.sleep(0.05)
            second = asyncio.create_task(path.write(Command.set_power(1.0), trim=True))
            assert await first
            assert await second
            addresses = [w.address for w in sim.write_log]
            power = whole.writes[0].address  # the droop write changes the power alone
            assert addresses == [*(w.address for w in whole.writes), power]
            assert path.written_at == T0
            assert path.written_mono > 0
            await sim.stop()  # the device stops answering
            assert not await path.write(Command.set_power(1.5), trim=True)
            assert shared.link.errors == 1
            assert shared.link.last_error is not None
        finally:
            await transport.close()
            await sim.stop()

    run(body)


def telemetry(soc_pct: float | None, battery_kw: float | None = 1.5) -> Telemetry:
    return Telemetry(battery_kw, soc_pct, 0.0, 0.0, 0.5, 50.0, 3.0, 4.0, 10.0, Mode.FORCED)


def test_latest_readings_give_the_limits_and_the_fallback() -> None:
    """No I/O: what the parts read from the latest sample and the site config."""
    rmap = load_all()["huawei"]
    sim = SimInverter(rmap, port=free_port())  # never started: its address and battery only
    site = site_config(SimSpec("s", "huawei", site={"safe_mode": "STANDBY"}), sim)
    transport = ModbusTransport(sim.host, sim.port, sim.unit_id, rmap.connection)
    shared = SiteShared(site, Device(rmap, transport), lambda: T0)
    assert shared.link_state() == "OFFLINE"  # never polled
    assert shared.battery_kw() == 0.0
    assert shared.safe_command() == Command.set_power(0.0)  # STANDBY holds zero
    assert shared.live_limits().max_discharge_kw == site.battery.max_discharge_kw
    shared.telemetry = telemetry(soc_pct=50.0)
    assert shared.link_state() == "ONLINE"
    assert shared.battery_kw() == 1.5
    limits = shared.live_limits()  # the BMS limits of the sample bound it
    assert (limits.max_charge_kw, limits.max_discharge_kw) == (3.0, 4.0)
    shared.telemetry = telemetry(soc_pct=site.soc_reserve_min_pct, battery_kw=None)
    assert shared.live_limits().max_discharge_kw == 0.0  # at the SoC reserve: no discharge
    assert shared.battery_kw() == 0.0
    selfc = site_config(SimSpec("s", "huawei"), sim)
    assert SiteShared(selfc, shared.device, lambda: T0).safe_command() == Command.safe_mode()
