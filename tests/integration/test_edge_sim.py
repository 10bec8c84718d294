"""HAL against each OEM's simulator over real TCP on loopback (no Kafka; fast)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from contract.enums import SiteMode
from edge.hal.device import Device
from edge.hal.discovery import expand_hosts, follow, scan
from edge.hal.errors import ModbusExceptionError, TransportError
from edge.hal.maps import load_all
from edge.hal.points import Command
from edge.hal.registermap import RegisterMap
from edge.hal.transport import Backoff, Health, ModbusTransport
from edge.sim.battery import BatteryParams
from edge.sim.server import SimInverter

MAPS = load_all()
OEMS = sorted(MAPS)
T = TypeVar("T")


def fast(rmap: RegisterMap, timeout_s: float = 1.0) -> RegisterMap:
    """The same map with test pacing: no settle time and no gaps (the sim needs none)."""
    conn = rmap.connection.model_copy(
        update={
            "connect_settle_s": 0.0,
            "request_gap_s": 0.0,
            "write_gap_s": 0.0,
            "timeout_s": timeout_s,
        }
    )
    return rmap.model_copy(update={"connection": conn})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(factory(), 20))


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 4.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


class Site:
    """A started simulator and a HAL device talking to it."""

    def __init__(self, oem: str, host: str = "127.0.0.1", **sim_args: object) -> None:
        self.rmap = fast(MAPS[oem])
        self.sim = SimInverter(self.rmap, host=host, port=free_port(host), **sim_args)  # type: ignore[arg-type]  # test-only kwargs pass-through
        self.transport = ModbusTransport(
            host, self.sim.port, self.sim.unit_id, self.rmap.connection, backoff=Backoff(0.05, 0.2)
        )
        link = "lan" if "lan" in self.rmap.timing.links else None  # a simulator is a LAN port
        self.device = Device(self.rmap, self.transport, link=link)

    async def __aenter__(self) -> Site:
        await self.sim.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()
        await self.sim.stop()


@pytest.mark.parametrize("oem", OEMS)
def test_identify_and_telemetry_match_the_simulated_site(oem: str) -> None:
    async def body() -> None:
        quick = BatteryParams(tau_s=0.3, dead_time_s=0.1)
        async with Site(oem, soc_pct=64.0, battery=quick) as site:
            ident = await site.device.identify()
            assert ident.oem == oem
            assert ident.model == site.sim.model.name
            assert ident.serial == site.sim.serial
            assert ident.rated_power_kw == pytest.approx(site.sim.model.rated_power_kw)
            tel = await site.device.read_telemetry()
            state = site.sim.state()
            assert tel.soc_pct == pytest.approx(state.soc_pct, abs=0.1)
            assert tel.pv_power_kw == pytest.approx(state.pv_kw, abs=0.01)
            assert tel.frequency_hz == pytest.approx(50.0)
            assert tel.capacity_kwh == pytest.approx(10.0, rel=0.01)
            assert tel.max_discharge_kw == pytest.approx(5.0)
            assert tel.mode is SiteMode.SELF_CONSUMPTION
            # Discharge 2 kW: the canonical sign comes out positive for every OEM.
            await site.device.apply(site.device.plan_command(Command.set_power(2.0)))

            async def discharging() -> bool:
                t = await site.device.read_telemetry()
                return t.battery_power_kw is not None and t.battery_power_kw > 1.5

            assert await until(discharging)
            tel = await site.device.read_telemetry()
            assert tel.mode in (SiteMode.FORCED, SiteMode.REMOTE)
            assert tel.battery_power_kw == pytest.approx(site.sim.battery.power_kw, abs=0.2)
            assert tel.load_kw is not None
            assert tel.grid_power_kw == pytest.approx(
                (tel.pv_power_kw or 0) + (tel.battery_power_kw or 0) - tel.load_kw, abs=0.05
            )
            assert await site.device.read_setpoint_readback() == pytest.approx(2.0, abs=0.01)

    run(body)


@pytest.mark.parametrize("oem", OEMS)
def test_each_control_sequence_reaches_the_device_in_order(oem: str) -> None:
    async def body() -> None:
        async with Site(oem) as site:
            await site.device.identify()
            await site.device.read_telemetry()
            for cmd in (
                Command.set_power(-2.0),
                Command.set_power(3.0),
                Command.set_power(0.0),
                Command.stop(),
                Command.safe_mode(),
            ):
                site.sim.write_log.clear()
                plan = site.device.plan_command(cmd)
                await site.device.apply(plan)
                got = [(w.fc, w.address, w.values) for w in site.sim.write_log]
                assert got == [(w.fc, w.address, w.values) for w in plan.writes], cmd
            assert sum(site.sim.write_counts.values()) > 0

    run(body)


@pytest.mark.parametrize("oem", OEMS)
def test_injected_faults_decode(oem: str) -> None:
    async def body() -> None:
        async with Site(oem) as site:
            assert await site.device.read_faults() == []
            expected = set()
            for table in site.rmap.faults:
                bit, fb = next(iter(table.bits.items()))
                site.sim.inject_fault(table.point, bit)
                expected.add(fb.code)
            codes = {f.code for f in await site.device.read_faults()}
            assert codes == expected
            assert (await site.device.read_telemetry()).mode is SiteMode.FAULT
            site.sim.clear_faults()
            assert await site.device.read_faults() == []

    run(body)


def test_huawei_forced_mode_ends_when_its_timer_runs_out() -> None:
    async def body() -> None:
        async with Site("huawei") as site:
            await site.device.identify()
            await site.device.apply(
                site.device.plan_command(Command.set_power(-1.0, duration_min=2))
            )
            assert (await site.device.read_telemetry()).mode is SiteMode.FORCED
            site.sim.advance(121.0)
            assert (await site.device.read_telemetry()).mode is SiteMode.SELF_CONSUMPTION
            assert await site.device.read_setpoint_readback() == 0.0

    run(body)


def test_sungrow_falls_back_to_self_consumption_without_heartbeat() -> None:
    async def body() -> None:
        async with Site("sungrow") as site:
            await site.device.identify()
            await site.device.apply(site.device.plan_command(Command.set_power(1.0)))
            assert (await site.device.read_telemetry()).mode is SiteMode.REMOTE
            site.sim.advance(15.0)
            heartbeat = site.device.plan_heartbeat()
            assert heartbeat is not None
            await site.device.apply(heartbeat)
            site.sim.advance(15.0)
            assert (await site.device.read_telemetry()).mode is SiteMode.REMOTE
            site.sim.advance(25.0)
            assert (await site.device.read_telemetry()).mode is SiteMode.SELF_CONSUMPTION

    run(body)


def test_simulator_refuses_writes_to_read_only_and_out_of_range_registers() -> None:
    async def body() -> None:
        async with Site("huawei") as site:
            soc = site.rmap.point("soc")
            with pytest.raises(ModbusExceptionError) as info:
                await site.transport.write(6, soc.address, [500])
            assert info.value.code == 0x02
            cmd = site.rmap.point("forcible_cmd")
            with pytest.raises(ModbusExceptionError) as info:
                await site.transport.write(6, cmd.address, [7])
            assert info.value.code == 0x03
            assert site.transport.health is Health.DEGRADED
            assert site.transport.stats.errors["exception"] == 2
            assert site.sim.write_log == []

    run(body)


def test_wrong_unit_id_is_a_typed_error() -> None:
    async def body() -> None:
        async with Site("sungrow") as site:
            wrong = ModbusTransport("127.0.0.1", site.sim.port, 77, site.rmap.connection)
            try:
                with pytest.raises(ModbusExceptionError) as info:
                    await Device(site.rmap, wrong).identify()
                assert info.value.code == 0x0B
            finally:
                await wrong.close()

    run(body)


def test_reconnects_after_the_server_restarts() -> None:
    async def body() -> None:
        async with Site("saj") as site:
            await site.device.identify()
            await site.sim.stop()
            with pytest.raises(TransportError):
                await site.device.read_telemetry()
            assert str(site.transport.health) in ("DEGRADED", "OFFLINE")
            await site.sim.start()

            async def back() -> bool:
                try:
                    await site.device.read_telemetry()
                except TransportError:
                    return False
                return True

            assert await until(back)
            assert site.transport.health is Health.ONLINE
            assert site.transport.stats.connects >= 2
            site.sim.drop_connections()
            assert await until(back)

    run(body)


def test_a_silent_device_never_stalls_another() -> None:
    async def body() -> None:
        release = asyncio.Event()

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)  # accept the request, never answer
            await release.wait()
            writer.close()
            await writer.wait_closed()

        silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
        silent_port = silent.sockets[0].getsockname()[1]
        async with Site("huawei") as site:
            stuck = ModbusTransport(
                "127.0.0.1", silent_port, 1, fast(MAPS["huawei"], 1.5).connection
            )
            stuck_task = asyncio.create_task(Device(site.rmap, stuck).read_telemetry())
            started = time.monotonic()
            for _ in range(10):
                await site.device.read_telemetry()
            assert time.monotonic() - started < 1.0
            with pytest.raises(TransportError):
                await stuck_task
            assert stuck.stats.errors["timeout"] == 1
            await stuck.close()
        release.set()
        await asyncio.sleep(0.05)
        silent.close()
        await silent.wait_closed()

    run(body)


def test_rediscovery_follows_a_device_to_its_new_address() -> None:
    async def body() -> None:
        async with Site("sungrow", host="127.0.0.2") as site:
            ident = await site.device.identify()
            found = await scan(expand_hosts("127.0.0.1-3"), [site.rmap], ports=[site.sim.port])
            assert [(f.host, f.identity.serial) for f in found] == [("127.0.0.2", ident.serial)]
            await site.sim.move_to("127.0.0.3")
            with pytest.raises(TransportError):
                await site.device.read_telemetry()
            assert await follow(site.device, expand_hosts("127.0.0.1-4"), timeout_s=0.5)
            assert site.transport.host == "127.0.0.3"
            tel = await site.device.read_telemetry()
            assert tel.soc_pct is not None

    run(body)


def test_read_back_settle_paces_holding_reads_after_a_write_not_writes() -> None:
    """Sungrow's rule (map decisions): two writes go back to back (only the request gap), a
    holding-register read after a write waits the settle; an input-register read does not."""

    async def body() -> None:
        async with Site("sungrow") as site:
            conn = site.rmap.connection.model_copy(
                update={"request_gap_s": 0.0, "write_gap_s": 0.0, "readback_settle_s": 0.3}
            )
            paced = ModbusTransport("127.0.0.1", site.sim.port, site.sim.unit_id, conn)
            cmd, freq = site.rmap.point("ems_cmd"), site.rmap.point("grid_frequency")
            try:
                await paced.read(freq.table, freq.address, 1)  # connected
                started = time.monotonic()
                await paced.write(6, cmd.address, [0xCC])
                await paced.write(6, cmd.address, [0xCC])
                assert time.monotonic() - started < 0.2  # no write gap between the two
                started = time.monotonic()
                await paced.read(freq.table, freq.address, 1)  # input table: no settle
                assert time.monotonic() - started < 0.2
                assert (await paced.read(cmd.table, cmd.address, 1)) == [0xCC]
                assert time.monotonic() - started >= 0.29  # the read-back waited the settle
            finally:
                await paced.close()

    run(body)
    lan = MAPS["sungrow"].with_link("lan").connection
    assert (lan.write_gap_s, lan.readback_settle_s) == (0.0, 0.5)
    winet = MAPS["sungrow"].with_link("winet_s").connection
    assert (winet.write_gap_s, winet.readback_settle_s) == (1.0, 1.0)  # WiNet-S as cited


def test_request_and_write_gaps_and_settle_time_are_enforced() -> None:
    async def body() -> None:
        async with Site("saj") as site:
            conn = site.rmap.connection.model_copy(
                update={"connect_settle_s": 0.2, "request_gap_s": 0.05, "write_gap_s": 0.15}
            )
            paced = ModbusTransport("127.0.0.1", site.sim.port, site.sim.unit_id, conn)
            try:
                p = site.rmap.point("passive_enable")
                started = time.monotonic()
                await paced.read(p.table, p.address, 1)
                assert time.monotonic() - started >= 0.2  # settle after connect
                started = time.monotonic()
                for _ in range(4):
                    await paced.read(p.table, p.address, 1)
                assert time.monotonic() - started >= 4 * 0.05 - 0.01
                started = time.monotonic()
                for _ in range(3):
                    await paced.write(6, p.address, [0])
                assert time.monotonic() - started >= 2 * 0.15
                assert [w.time_s for w in site.sim.write_log] == sorted(
                    w.time_s for w in site.sim.write_log
                )
                gaps = [
                    b.time_s - a.time_s
                    for a, b in zip(site.sim.write_log, site.sim.write_log[1:], strict=False)
                ]
                assert min(gaps) >= 0.14
            finally:
                await paced.close()

    run(body)


def test_firmware_variant_is_picked_from_the_identified_firmware() -> None:
    async def body() -> None:
        async with Site("huawei", version="V100R001C00SPC141") as site:
            ident = await site.device.identify()
            assert ident.variant == "fw_spc140"
            assert site.device.rmap.connection.ports == [6607, 502]

    run(body)


def test_simulated_battery_refuses_discharge_at_min_soc() -> None:
    async def body() -> None:
        quick = BatteryParams(tau_s=0.1, dead_time_s=0.0, min_soc_pct=10.0)
        async with Site("sungrow", soc_pct=10.0, battery=quick) as site:
            await site.device.identify()
            await site.device.apply(site.device.plan_command(Command.set_power(3.0)))
            await asyncio.sleep(0.5)
            tel = await site.device.read_telemetry()
            assert tel.mode is SiteMode.REMOTE
            assert tel.battery_power_kw == 0.0
            await site.device.apply(site.device.plan_command(Command.set_power(-3.0)))

            async def charging() -> bool:
                t = await site.device.read_telemetry()
                return (t.battery_power_kw or 0.0) < -2.5

            assert await until(charging)

    run(body)


def test_a_warning_is_reported_but_does_not_stop_the_battery() -> None:
    async def body() -> None:
        async with Site("sungrow") as site:
            site.sim.inject_fault("inverter_alarm", 0)  # fan alarm, WARNING
            faults = await site.device.read_faults()
            assert [(f.code, f.severity.value) for f in faults] == [
                ("sungrow.inverter_alarm.fan", "WARNING")
            ]
            assert (await site.device.read_telemetry()).mode is SiteMode.SELF_CONSUMPTION
            site.sim.inject_fault("battery_fault", 14)  # BMS communication fault, MAJOR
            assert (await site.device.read_telemetry()).mode is SiteMode.FAULT
            sources = {f.source.value for f in await site.device.read_faults()}
            assert sources == {"INVERTER", "BMS"}

    run(body)
