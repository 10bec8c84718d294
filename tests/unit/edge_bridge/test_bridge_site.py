"""SiteController against a real simulated inverter over Modbus TCP (no broker): expiry back to
safe mode, SAFE_MODE, idempotent resubmission, results kept in the outbox."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.enums import CommandKind, Product, SiteMode
from contract.records import ReserveArm
from edge.bridge.diskwriter import DiskWriter
from edge.bridge.events import RESULT
from edge.bridge.idempotency import IdempotencyStore
from edge.bridge.outbox import Outbox
from edge.bridge.sink import BridgeTopics, EventSink
from edge.bridge.site import SiteController
from edge.hal.device import Device
from edge.hal.maps import load_all
from edge.hal.registermap import RegisterMap
from edge.hal.transport import ModbusTransport
from edge.sim.battery import BatteryParams
from edge.sim.server import SimInverter
from edge.testing.harness import SimSpec, free_port, new_command, site_config


@asynccontextmanager
async def controller(
    tmp: Path,
    oem: str = "huawei",
    bridge_map: RegisterMap | None = None,
    site: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[SiteController, SimInverter]]:
    """A simulator of ``oem`` and a controller talking to it (through ``bridge_map`` if given;
    ``site``: site-config overrides)."""
    rmap = load_all()[oem]
    sim = SimInverter(rmap, port=free_port(), battery=BatteryParams(tau_s=0.2, dead_time_s=0.05))
    await sim.start()
    transport = ModbusTransport(sim.host, sim.port, sim.unit_id, rmap.connection)
    link = "lan" if "lan" in rmap.timing.links else None  # a simulator is a LAN port
    store = IdempotencyStore(tmp / "idem.sqlite")
    outbox = Outbox(tmp / "outbox", defer_sync=True)
    writer = DiskWriter(store, outbox)
    cfg = site_config(SimSpec("s1", oem, site=site or {}), sim)
    ctl = SiteController(
        cfg,
        Device(bridge_map or rmap, transport, link=link, policy=cfg.control_policy()),
        writer=writer,
        sink=EventSink(outbox, BridgeTopics()),
        telemetry_interval_s=0.1,
    )
    runs = (ctl.run_commands(), ctl.run_telemetry(), ctl.run_reserve())
    tasks = [asyncio.create_task(r) for r in runs]
    try:
        yield ctl, sim
    finally:
        await ctl.stop_observers()  # read-backs still waiting: no task outlives the test
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctl.stop_observers()  # as the runtime does: no read-back outlives the outbox
        await transport.close()
        await sim.stop()
        await asyncio.sleep(0.05)
        await writer.aclose()
        store.close()
        outbox.close()


def results(ctl: SiteController) -> dict[str, dict[str, Any]]:
    codec = ctl.sink.codec
    recs = [codec.decode(r.value).record for r in ctl.sink.outbox.pending(10_000)]
    return {r["command_id"]: r for r in recs if r.get("status") is not None}


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


async def until(pred: Callable[[], bool], within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while not pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.05)


def test_expired_command_reverts_to_safe_mode(tmp_path: Path) -> None:
    async def body() -> None:
        async with controller(tmp_path) as (ctl, _sim):
            await until(lambda: ctl.shared.telemetry is not None)
            # valid for longer than its write and read-back take here (about 2 s: samples are
            # stamped when read, so expiry is judged on time, not a poll late)
            cmd = new_command("s1", CommandKind.SET_POWER, 2.0, valid_s=3.0)
            ctl.submit(cmd)
            await ctl.drain()
            assert results(ctl)[cmd.command_id]["status"] == "APPLIED"
            assert not ctl.shared.setpoint.state.in_safe_mode
            await until(lambda: ctl.shared.setpoint.state.in_safe_mode, 10)
            assert ctl.shared.setpoint.state.active is None
            await until(
                lambda: (
                    ctl.shared.telemetry is not None
                    and ctl.shared.telemetry.mode is not SiteMode.FORCED
                )
            )
            assert ctl.shared.telemetry is not None
            assert ctl.shared.telemetry.mode is SiteMode.SELF_CONSUMPTION

    run(body)


def test_safe_mode_and_resubmission(tmp_path: Path) -> None:
    async def body() -> None:
        async with controller(tmp_path) as (ctl, sim):
            await until(lambda: ctl.shared.telemetry is not None)
            cmd = new_command("s1", CommandKind.SET_POWER, -1.0)
            ctl.submit(cmd)
            ctl.submit(cmd)  # redelivered while in flight
            await ctl.drain()
            writes = len(sim.write_log)
            ctl.submit(cmd)  # replayed after completion: stored result re-sent, no write
            await ctl.drain()
            assert len(sim.write_log) == writes
            sent = [r for r in ctl.sink.outbox.pending(10_000) if r.topic.endswith("results")]
            assert len(sent) == 2
            assert len({r.event_id for r in sent}) == 1
            safe = new_command("s1", CommandKind.SAFE_MODE)
            ctl.submit(safe)
            await ctl.drain()
            res = results(ctl)[safe.command_id]
            assert res["status"] == "APPLIED"
            assert res["written_kw"] is None
            assert ctl.shared.setpoint.state.in_safe_mode
            assert ctl.sink.emitted[RESULT] == 3

    run(body)


def test_command_seen_claimed_after_a_crash_is_not_written(tmp_path: Path) -> None:
    async def body() -> None:
        cmd = new_command("s1", CommandKind.SET_POWER, 1.0)
        with IdempotencyStore(tmp_path / "idem.sqlite") as store:  # the previous process
            now = datetime.now(UTC)
            store.claim(cmd.command_id, "s1", now + timedelta(minutes=2), now)
        async with controller(tmp_path) as (ctl, sim):
            await until(lambda: ctl.shared.telemetry is not None)
            writes = len(sim.write_log)
            ctl.submit(cmd)
            await ctl.drain()
            res = results(ctl)[cmd.command_id]
            assert res["status"] == "FAILED"
            assert "at most once" in res["reason"]
            assert len(sim.write_log) == writes

    run(body)


def test_write_the_map_refuses_is_rejected_and_never_sent(tmp_path: Path) -> None:
    """The map bounds the power register; a plan outside it is refused before any write."""
    rmap = load_all()["huawei"]
    name = rmap.control.set_power.power_point
    tight = rmap.points[name].model_copy(update={"max": 500.0})  # 0.5 kW in the map's unit (W)
    narrow = rmap.model_copy(update={"points": {**rmap.points, name: tight}})

    async def body() -> None:
        async with controller(tmp_path, "huawei", narrow) as (ctl, sim):
            await until(lambda: ctl.shared.telemetry is not None)
            writes = len(sim.write_log)
            cmd = new_command("s1", CommandKind.SET_POWER, -2.0)  # a charge: the bounded register
            ctl.submit(cmd)
            await ctl.drain()
            res = results(ctl)[cmd.command_id]
            assert res["status"] == "REJECTED"
            assert "refused by the register map" in res["reason"]
            assert len(sim.write_log) == writes

    run(body)


def test_fault_raised_and_cleared_are_published_on_change(tmp_path: Path) -> None:
    async def body() -> None:
        async with controller(tmp_path) as (ctl, sim):
            await until(lambda: ctl.shared.telemetry is not None)
            table = sim.rmap.faults[0]
            bit = sorted(table.bits)[0]
            sim.inject_fault(table.point, bit)
            await until(lambda: bool(ctl.polling.faults), 10)
            sim.clear_faults()
            await until(lambda: not ctl.polling.faults, 10)
            codec = ctl.sink.codec
            events = [
                codec.decode(r.value).record
                for r in ctl.sink.outbox.pending(10_000)
                if r.topic.endswith("faults")
            ]
            assert [[f["code"] for f in e["raised"]] for e in events] == [
                [table.bits[bit].code],
                [],
            ]
            assert [[f["code"] for f in e["cleared"]] for e in events] == [
                [],
                [table.bits[bit].code],
            ]

    run(body)


def test_commands_carry_the_heartbeat_and_standalone_ones_are_skipped(tmp_path: Path) -> None:
    """Sungrow, heartbeat every 1 s: while commands come every 0.3 s, the heartbeat rides along
    after their power writes (never ahead of them) and no standalone heartbeat is written; the
    register is never left unwritten for a period. Without commands, standalone ones resume."""

    async def body() -> None:
        async with controller(tmp_path, "sungrow", site={"keepalive_s": 1.0}) as (ctl, sim):
            await until(lambda: ctl.shared.telemetry is not None)
            hb = sim.rmap.point("ems_heartbeat").address
            power = sim.rmap.point("ems_mode").address  # the FC16 of mode, command, power
            ctl.submit(new_command("s1", CommandKind.SET_POWER, 3.0))  # the whole sequence
            await until(lambda: ctl.shared.setpoint.last_written_kw is not None)
            start = len(sim.write_log)
            standalone = ctl.polling.keepalive.heartbeats
            for i in range(10):
                await asyncio.sleep(0.3)
                ctl.submit(new_command("s1", CommandKind.SET_POWER, (-1.0) ** i * (1.0 + 0.1 * i)))
            await until(lambda: not ctl.commands.queued and not ctl.commands.applying)
            assert ctl.polling.keepalive.heartbeats == standalone
            device = ctl.shared.device
            assert isinstance(device, Device)
            assert device.book.heartbeat.carried >= 3
            log = sim.write_log[start:]
            assert sum(w.address == power for w in log) == 10  # one power write per command
            beats = [w for w in log if w.address == hb]
            assert len(beats) >= 3
            for prev, w in itertools.pairwise(log):
                if w.address == hb:
                    assert prev.address == power  # taken along after a command's write
            times = [sim.write_log[start - 1].time_s, *(w.time_s for w in beats)]
            assert max(b - a for a, b in itertools.pairwise(times)) < 1.0
            await until(lambda: ctl.polling.keepalive.heartbeats > standalone, 8.0)  # resumes
            await ctl.drain()  # every command has its outcome (before the writer closes)

    run(body)


def test_without_the_cloud_the_arithmetic_runs_until_expiry(tmp_path: Path) -> None:
    """After its last command a site hears nothing more (the cloud link is gone; the controller
    has no other input): the baseline follows the home's load, the armed response the
    frequency, the order stays on top of both; when they expire the site is handed back to its
    own mode."""

    async def body() -> None:
        async with controller(tmp_path) as (ctl, sim):
            await until(lambda: ctl.shared.telemetry is not None)
            arm = new_command(
                "s1",
                CommandKind.ARM_RESERVE,
                reserve=ReserveArm(Product.FCR_D_UP, 2.0, 49.9, 49.5),
                valid_s=8.0,
            )
            order = new_command("s1", CommandKind.ORDER, 1.0, product=Product.MFRR, valid_s=8.0)
            ctl.submit(arm)
            ctl.submit(order)
            await ctl.drain()
            assert {results(ctl)[c.command_id]["status"] for c in (arm, order)} == {"APPLIED"}
            sh = ctl.shared

            def holds(extra_kw: float) -> bool:
                written = sh.setpoint.last_written_kw
                return written is not None and abs(written - sh.last_baseline_kw - extra_kw) < 0.06

            await until(lambda: holds(1.0))  # the baseline + the order
            before = sh.last_baseline_kw
            sim.switch_load(3.0)  # the home's load rises: so does its baseline
            await until(lambda: sh.last_baseline_kw > before + 2.5 and holds(1.0))
            sim.set_frequency(49.7)  # FCR-D up half-way: 1 kW more
            await until(lambda: holds(2.0))
            assert not sh.setpoint.state.in_safe_mode
            await until(lambda: sh.setpoint.state.in_safe_mode, 10)  # all expired
            assert sh.setpoint.in_force.empty
            await until(
                lambda: sh.telemetry is not None and sh.telemetry.mode is SiteMode.SELF_CONSUMPTION
            )

    run(body)


def test_an_arm_is_judged_on_the_target_in_force_when_the_baseline_moved(tmp_path: Path) -> None:
    """The home's load changes between an arm's write and its read-back: the reserve loop
    re-writes the target (the baseline moved), and the read-back judges that power, from its
    own write, instead of taking the new register value for a clamp. (Sungrow: a load
    register of its own, so the baseline moves once; Huawei's load is derived from two
    registers read apart, which wobbles while this fixture's very fast battery moves.)"""

    async def body() -> None:
        async with controller(tmp_path, "sungrow") as (ctl, sim):
            await until(lambda: ctl.shared.telemetry is not None)
            arm = new_command(
                "s1",
                CommandKind.ARM_RESERVE,
                reserve=ReserveArm(Product.FCR_D_UP, 2.0, 49.9, 49.5),
            )
            ctl.submit(arm)
            await until(lambda: bool(ctl.reserve.armed))  # written; the read-back waits
            first = ctl.shared.setpoint.last_written_kw
            sim.switch_load(2.0)
            await until(lambda: ctl.shared.setpoint.last_written_kw != first)
            await ctl.drain()
            res = results(ctl)[arm.command_id]
            assert res["status"] == "APPLIED", res["reason"]
            assert "target re-written to" in res["reason"]
            assert res["written_kw"] == pytest.approx(first)  # what the arm itself wrote

    run(body)


def test_a_sample_is_stamped_when_its_registers_were_read(tmp_path: Path) -> None:
    """Over a slow link (each telemetry read takes 150 ms) a sample carries the instant its
    registers were read, not when the poll started; and a command applied while a poll ran
    shows only in samples stamped after it was written."""
    slow_s = 0.15
    reads: list[tuple[datetime, datetime]] = []

    async def body() -> None:
        async with controller(tmp_path) as (ctl, _sim):
            device = ctl.shared.device
            read = device.read_due_telemetry

            async def slow_read() -> Any:
                start = datetime.now(UTC)
                await asyncio.sleep(slow_s)
                tel = await read()
                reads.append((start, datetime.now(UTC)))
                return tel

            device.read_due_telemetry = slow_read  # type: ignore[method-assign]
            await until(lambda: len(reads) >= 3)
            cmd = new_command("s1", CommandKind.SET_POWER, 1.5)
            ctl.submit(cmd)
            await ctl.drain()
            written_at = ctl.shared.setpoint.changed_at
            assert written_at is not None
            await until(lambda: len(reads) >= 12)
            codec = ctl.sink.codec
            samples = [
                rec
                for r in ctl.sink.outbox.pending(10_000)
                if "battery_power_kw" in (rec := codec.decode(r.value).record)
            ]
            ends = sorted(end for _, end in reads)
            slow = [s for s in samples if s["event_time"] > reads[0][0]]
            assert len(slow) >= 8, samples
            for s in slow:
                stamp = s["event_time"]
                end = max((e for e in ends if e <= stamp), default=None)
                assert end is not None, (stamp, reads)
                assert (stamp - end).total_seconds() < slow_s / 3, (stamp, end)
                if s["active_command_id"] == cmd.command_id:
                    assert stamp >= written_at, (stamp, written_at)
            assert any(s["active_command_id"] == cmd.command_id for s in slow)

    run(body)
