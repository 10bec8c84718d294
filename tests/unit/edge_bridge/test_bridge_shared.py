"""What a site's parts share: the setpoint in force after each kind of command (table), the
write path against a real simulated inverter (one plan at a time, a failed write counted on
the link and reported, trimmed droop writes), and the keep-alive's re-assert decision (table)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contract.enums import CommandKind, Product, SiteMode
from contract.records import ReserveArm
from edge.bridge.bounds import Bounds, EnergyRoom
from edge.bridge.effects import Room, effect
from edge.bridge.keepalive import Reassert, reassert_due
from edge.bridge.link import REASSERT_MIN_S
from edge.bridge.model import BridgeCommand, Cause, PowerLimits
from edge.bridge.scheduler import Action, decide
from edge.bridge.shared import Setpoint, SiteShared
from edge.hal.device import Device
from edge.hal.maps import load_all
from edge.hal.points import Command, Telemetry
from edge.hal.transport import ModbusTransport
from edge.sim.server import SimInverter
from edge.testing.harness import SimSpec, free_port, new_command, site_config

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ARM = ReserveArm(Product.FCR_D_UP, 4.0, 49.9, 49.5)


def command(kind: CommandKind, kw: float | None = None) -> Any:
    return new_command(
        "s", kind, kw, reserve=ARM if kind is CommandKind.ARM_RESERVE else None, now=T0
    )


# A command is applied as the pipeline does: its effect on what is in force, then its writes.
ROOM = Room(
    2.0, Bounds.of_limits(PowerLimits(10.0, 10.0, Cause.SITE_LIMIT, Cause.SITE_LIMIT)), EnergyRoom()
)


def applied(sp: Setpoint, cmd: BridgeCommand, written: float) -> None:
    eff = effect(cmd, sp.in_force, ROOM, T0)
    assert not isinstance(eff, str)
    sp.commanded(cmd, eff.in_force, None if eff.in_force.empty else written)


# writes (kW, seconds after T0) -> (last written, the one before it, when it last changed):
# a re-write of the same power (a re-assertion) is no change, so a read-back still judges
# the target from the power the battery followed before it moved
WROTE = [
    ([(1.0, 0)], (1.0, None, 0)),
    ([(1.0, 0), (1.5, 2)], (1.5, 1.0, 2)),
    ([(1.0, 0), (1.5, 2), (1.5, 5)], (1.5, 1.0, 2)),
    ([(1.0, 0), (1.5, 2), (0.5, 3)], (0.5, 1.5, 3)),
]


@pytest.mark.parametrize(("writes", "after"), WROTE)
def test_the_target_before_the_last_change_is_kept(
    writes: list[tuple[float, int]], after: tuple[float, float | None, int]
) -> None:
    sp = Setpoint()
    for kw, at_s in writes:
        sp.wrote(kw, T0 + timedelta(seconds=at_s))
    last, before, at_s = after
    assert (sp.last_written_kw, sp.before_last_kw) == (last, before)
    assert sp.changed_at == T0 + timedelta(seconds=at_s)
    sp.to_safe_mode()
    assert sp.last_written_kw is None
    assert sp.before_last_kw is None
    assert sp.changed_at is None


# (command kind, power its writes hold, predetermined setpoint after (None: the site's own
#  mode is the baseline), last written kW after, in safe mode, armed after)
COMMANDED = [
    (CommandKind.SET_POWER, 3.0, 3.0, 3.0, False, False),
    (CommandKind.STOP, 0.0, 0.0, 0.0, False, False),  # zero held under remote control
    (CommandKind.ARM_RESERVE, 4.5, 2.0, 4.5, False, True),  # setpoint kept, response on top
    (CommandKind.SAFE_MODE, 0.0, None, None, True, False),  # the OEM's own mode: nothing holds
]


@pytest.mark.parametrize(("kind", "written", "held", "last", "safe", "armed"), COMMANDED)
def test_setpoint_after_a_command(  # noqa: PLR0917  # one argument per table column
    kind: CommandKind,
    written: float,
    held: float | None,
    last: float | None,
    safe: bool,
    armed: bool,
) -> None:
    sp = Setpoint()
    assert sp.state.in_safe_mode  # a site starts in safe mode
    applied(sp, command(CommandKind.SET_POWER, 2.0), 2.0)
    cmd = command(kind, written if kind is CommandKind.SET_POWER else None)
    applied(sp, cmd, written)
    kept = sp.in_force.held
    assert (None if kept is None else kept.power_kw, sp.last_written_kw) == (held, last)
    assert sp.state.in_safe_mode is safe
    assert bool(sp.in_force.arms) is armed
    assert sp.state.active is (None if safe else cmd)
    sp.to_safe_mode()
    assert (sp.in_force.empty, sp.last_written_kw, sp.state.in_safe_mode) == (True, None, True)


def test_expiry_keeps_the_newest_command_in_force_active() -> None:
    """A setpoint valid 60 s, then an arm valid 120 s: when the setpoint expires the arm stays
    in force and becomes the active command; when it expires too, nothing is left and the
    active command stays the expired arm (so the scheduler hands the site back)."""
    sp = Setpoint()
    setpoint = new_command("s", CommandKind.SET_POWER, 1.0, valid_s=60.0, now=T0)
    arm = new_command("s", CommandKind.ARM_RESERVE, reserve=ARM, valid_s=120.0, now=T0)
    order = new_command("s", CommandKind.ORDER, 1.0, product=Product.MFRR, valid_s=30.0, now=T0)
    for cmd in (setpoint, arm, order):
        applied(sp, cmd, 1.0)
    assert sp.expire(T0 + timedelta(seconds=10)) == []
    assert sp.expire(T0 + timedelta(seconds=30)) == [order]
    assert sp.expire(T0 + timedelta(seconds=60)) == [setpoint]
    assert sp.state.active is arm
    assert sp.in_force.held is None  # the site's own mode is the baseline again
    assert sp.expire(T0 + timedelta(seconds=120)) == [arm]
    assert sp.in_force.empty
    assert sp.state.active is arm
    assert decide(sp.state, T0 + timedelta(seconds=120)) is Action.REVERT_TO_SAFE_MODE


# (mode, s since written, s since the last re-assert, settle s, refresh s, reason)
REASSERTS = [
    (SiteMode.FORCED, 10.0, 1e9, 2.0, 600.0, None),  # under control, fresh
    (SiteMode.SELF_CONSUMPTION, 1.0, 1e9, 2.0, 600.0, None),  # may still be settling
    (SiteMode.SELF_CONSUMPTION, 3.0, 1e9, 2.0, 600.0, Reassert.LEFT_CONTROL),
    (SiteMode.REMOTE, 600.0, 1e9, 2.0, 600.0, Reassert.REFRESH),
    (SiteMode.SELF_CONSUMPTION, 700.0, 1e9, 2.0, 600.0, Reassert.LEFT_CONTROL),  # left wins
    (SiteMode.SELF_CONSUMPTION, 3.0, REASSERT_MIN_S - 0.1, 2.0, 600.0, None),  # rate limited
    (SiteMode.SELF_CONSUMPTION, 3.0, REASSERT_MIN_S, 2.0, 600.0, Reassert.LEFT_CONTROL),
]


@pytest.mark.parametrize("case", REASSERTS)
def test_reassert_due(case: tuple[SiteMode, float, float, float, float, Reassert | None]) -> None:
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
    return Telemetry(battery_kw, soc_pct, 0.0, 0.0, 0.5, 50.0, 3.0, 4.0, 10.0, SiteMode.FORCED)


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
