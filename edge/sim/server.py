"""Simulated inverter: a pymodbus TCP server built from a register map, at the real wire addresses.

pymodbus 3.12.1's `ModbusDeviceContext.getValues/setValues` add 1 to the PDU address before
touching the data block (zero_mode is gone), so the sparse blocks here are keyed at
`wire address + 1`. Every point of the map is present; gaps of up to the map's
`max_read_gap` registers between points are filled with zeros so coalesced block reads work.

Control API for tests and the CLI: `write_log` / `write_counts`, `inject_fault`,
`clear_faults`, `set_frequency`, `switch_load` (an appliance on top of the household profile:
a sauna, an EV charger), `advance` (virtual clock), `drop_connections`, `move_to`,
`pacing` (request count and spacing; with `min_request_spacing_s` > 0 the simulator refuses
requests spaced closer than that with exception 0x06, like a slow dongle).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusDeviceContext, ModbusServerContext, ModbusSparseDataBlock

from contract.enums import Severity
from edge.hal.codecs import RAW_RANGE, decode_unsigned, encode_int, encode_str, to_signed
from edge.hal.registermap import ModelInfo, Point, RegisterMap
from edge.sim.battery import BatteryModel, BatteryParams
from edge.sim.firmware import DEFAULT_VERSION, FIRMWARE, RESPONSE, Firmware, PhysicalState
from edge.sim.pacing import PacedTcpServer, RequestPacing
from edge.sim.profiles import SiteProfile

OFFSET = 1  # ModbusDeviceContext adds 1 to every PDU address
TABLE_OF_FC = {3: "holding", 6: "holding", 16: "holding", 4: "input"}


@dataclass(frozen=True)
class WriteRecord:
    fc: int
    address: int
    values: tuple[int, ...]
    time_s: float


class SimRegisters:
    """Point-name access to the sim's data blocks (engineering values, no bounds)."""

    def __init__(self, rmap: RegisterMap) -> None:
        self.rmap = rmap
        self.blocks = {"holding": self._block("holding"), "input": self._block("input")}

    def _block(self, table: str) -> ModbusSparseDataBlock:
        points = sorted(
            (p.address, p.address + p.count) for p in self.rmap.points.values() if p.table == table
        )
        values: dict[int, int] = {}
        gap = self.rmap.connection.max_read_gap
        for i, (start, end) in enumerate(points):
            for a in range(start, end):
                values[a + OFFSET] = 0
            if i + 1 < len(points) and 0 < points[i + 1][0] - end <= gap:
                for a in range(end, points[i + 1][0]):
                    values[a + OFFSET] = 0
        return ModbusSparseDataBlock(values, mutable=False)  # type: ignore[no-untyped-call]  # pymodbus

    def raw(self, p: Point) -> list[int]:
        got = self.blocks[p.table].getValues(p.address + OFFSET, p.count)
        if isinstance(got, ExcCodes):
            raise KeyError(p.address)
        return [int(v) for v in got]

    def get(self, name: str) -> float:
        p = self.rmap.point(name)
        pattern = decode_unsigned(self.raw(p), p.type, self.rmap.word_order(p))
        return to_signed(pattern, p.type) * p.scale

    def set(self, name: str, value: float | str) -> None:
        p = self.rmap.point(name)
        if p.type == "str":
            regs = encode_str(str(value), p.count)
        else:
            lo, hi = RAW_RANGE[p.type]
            raw = max(lo, min(hi, round(float(value) / p.scale)))
            regs = encode_int(raw, p.type, self.rmap.word_order(p))
        self.blocks[p.table].setValues(p.address + OFFSET, regs)

    def set_word(self, name: str, word: int) -> None:
        p = self.rmap.point(name)
        self.blocks[p.table].setValues(
            p.address + OFFSET,
            encode_int(to_signed(word, p.type), p.type, self.rmap.word_order(p)),
        )


class _Context(ModbusDeviceContext):
    """Device context that validates and logs client writes before storing them."""

    def __init__(self, sim: SimInverter) -> None:
        regs = sim.registers
        super().__init__(hr=regs.blocks["holding"], ir=regs.blocks["input"])
        self.sim = sim

    def setValues(self, func_code: int, address: int, values: Any) -> ExcCodes | None:  # noqa: N802  # pymodbus API name
        return self.sim.on_client_write(func_code, address, [int(v) for v in values])


class SimInverter:
    """One simulated inverter site. `await start()`, `await stop()`."""

    def __init__(
        self,
        rmap: RegisterMap,
        *,
        model: str | None = None,
        host: str = "127.0.0.1",
        port: int = 5020,
        unit_id: int | None = None,
        serial: str | None = None,
        version: str | None = None,
        battery: BatteryParams | None = None,
        soc_pct: float = 50.0,
        seed: int = 0,
        start_time_of_day_s: float = 12 * 3600.0,
        tick_s: float = 0.1,
        min_request_spacing_s: float = 0.0,
        clock_origin: float | None = None,
    ) -> None:
        self.rmap = rmap
        self.model: ModelInfo = _pick_model(rmap, model)
        self.host = host
        self.port = port
        self.unit_id = rmap.connection.unit_ids[0] if unit_id is None else unit_id
        self.serial = serial or f"SIM{rmap.oem.upper()}{seed:05d}"
        tau, dead = RESPONSE[rmap.oem]
        params = battery or BatteryParams(tau_s=tau, dead_time_s=dead)
        self.battery = BatteryModel(params, soc_pct=soc_pct)
        self.profile = SiteProfile(seed=seed)
        self.frequency_hz = 50.0
        self.extra_load_kw = 0.0  # appliances switched on beyond the household profile
        self.tick_s = tick_s
        self.registers = SimRegisters(rmap)
        self.firmware: Firmware = FIRMWARE[rmap.oem](
            self.registers, self.model, self.serial, version or DEFAULT_VERSION[rmap.oem]
        )
        self.pacing = RequestPacing(min_spacing_s=min_request_spacing_s)
        self.write_log: list[WriteRecord] = []
        self.write_counts: Counter[int] = Counter()
        self.faults: dict[str, int] = {t.point: 0 for t in rmap.faults}
        # time.monotonic() at the simulated clock's zero: twins given the same origin see the
        # same household load and PV at every instant (edge.testing.twins)
        self._t0 = time.monotonic() if clock_origin is None else clock_origin
        self._offset_s = 0.0
        self._start_tod = start_time_of_day_s
        self._last_tick = 0.0
        self._server: PacedTcpServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.firmware.init_registers(self.state())
        self.tick()

    # ------------------------------------------------------------- clock/state
    def now(self) -> float:
        return time.monotonic() - self._t0 + self._offset_s

    def advance(self, seconds: float) -> None:
        """Jump the virtual clock (firmware timers, heartbeats) forward."""
        self._offset_s += seconds
        self.tick()

    def state(self) -> PhysicalState:
        t = self._start_tod + self.now()
        return PhysicalState(
            now_s=self.now(),
            pv_kw=self.profile.pv_kw(t),
            load_kw=self.profile.load_kw(t) + self.extra_load_kw,
            battery_kw=self.battery.power_kw,
            soc_pct=self.battery.soc_pct,
            frequency_hz=self.frequency_hz,
            capacity_kwh=self.battery.params.capacity_kwh,
            max_charge_kw=self.battery.params.max_charge_kw,
            max_discharge_kw=self.battery.params.max_discharge_kw,
            faulted=self.battery_blocked(),
        )

    def tick(self) -> None:
        now = self.now()
        dt = max(0.0, now - self._last_tick)
        self._last_tick = now
        state = self.state()
        target = 0.0 if state.faulted else self.firmware.target_kw(state)
        self.battery.step(min(dt, 3600.0), target)
        state = self.state()
        self.firmware.publish(state)
        for name, word in self.faults.items():
            self.registers.set_word(name, word)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.tick()

    # --------------------------------------------------------------- writes
    def on_client_write(self, fc: int, address: int, values: list[int]) -> ExcCodes | None:
        wire = address  # the context hands us the PDU address, before its +1
        touched: list[str] = []
        covered: set[int] = set()
        for name, p in self.rmap.points.items():
            if (
                p.table != "holding"
                or p.address + p.count <= wire
                or p.address >= wire + len(values)
            ):
                continue
            if not p.writable:
                return ExcCodes.ILLEGAL_ADDRESS
            if p.address < wire or p.address + p.count > wire + len(values):
                return ExcCodes.ILLEGAL_ADDRESS  # a partial write of a multi-register point
            regs = values[p.address - wire : p.address - wire + p.count]
            raw = to_signed(decode_unsigned(regs, p.type, self.rmap.word_order(p)), p.type)
            value = raw * p.scale
            if (p.min is not None and value < p.min - 1e-9) or (
                p.max is not None and value > p.max + 1e-9
            ):
                return ExcCodes.ILLEGAL_VALUE
            touched.append(name)
            covered.update(range(p.address, p.address + p.count))
        if covered != set(range(wire, wire + len(values))):
            return ExcCodes.ILLEGAL_ADDRESS
        self.registers.blocks["holding"].setValues(wire + OFFSET, values)
        self.write_log.append(WriteRecord(fc, wire, tuple(values), self.now()))
        for i in range(len(values)):
            self.write_counts[wire + i] += 1
        for name in touched:
            self.firmware.on_write(name, self.now())
        self.tick()  # firmware reacts at once (mode registers), not only on the next tick
        return None

    # ---------------------------------------------------------- fault/control
    def inject_fault(self, point: str, bit: int) -> None:
        if point not in self.faults:
            raise KeyError(f"{point} is not a fault word of {self.rmap.oem}")
        self.faults[point] |= 1 << bit
        self.tick()

    def battery_blocked(self) -> bool:
        """A MAJOR fault (documented bit) stops the battery; warnings do not."""
        for table in self.rmap.faults:
            word = self.faults[table.point]
            for bit, fb in table.bits.items():
                if word >> bit & 1 and fb.severity is Severity.MAJOR:
                    return True
        return False

    def clear_faults(self) -> None:
        self.faults = dict.fromkeys(self.faults, 0)
        self.tick()

    def set_frequency(self, hz: float) -> None:
        """The grid frequency the inverter measures, in its register at once.

        Only that register: the battery does not depend on it, and a whole tick per change
        (every 0.1 s of a test trace, on every simulator) cost the demo's event loop ~25 ms
        per step at 60 homes; the next tick publishes the rest of the state.
        """
        self.frequency_hz = hz
        self.firmware.publish_frequency(hz)

    def switch_load(self, kw: float) -> None:
        """An appliance of ``kw`` switches on (``kw`` > 0) or the ones on switch off (0): the
        household load is the profile's plus this, at once (the next tick publishes it)."""
        if not math.isfinite(kw) or kw < 0.0:
            raise ValueError(f"an appliance load must be finite and >= 0 kW, got {kw!r}")
        self.extra_load_kw = kw
        self.tick()

    # --------------------------------------------------------------- network
    async def start(self) -> None:
        context = ModbusServerContext(devices={self.unit_id: _Context(self)}, single=False)  # type: ignore[no-untyped-call]  # pymodbus
        self._server = PacedTcpServer(context, address=(self.host, self.port), pacing=self.pacing)
        await self._server.serve_forever(background=True)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus
            self._server = None

    def drop_connections(self) -> None:
        """Close every client connection (the server keeps listening)."""
        if self._server is None:
            return
        for conn in list(self._server.active_connections.values()):
            conn.close()

    async def move_to(self, host: str, port: int | None = None) -> None:
        """Simulate a DHCP address change: stop listening here, listen there."""
        await self.stop()
        self.host = host
        self.port = port or self.port
        await self.start()


def _pick_model(rmap: RegisterMap, name: str | None) -> ModelInfo:
    if name is None:
        return rmap.header.models[-1]
    for info in rmap.header.models:
        if info.name.lower() == name.lower():
            return info
    names = ", ".join(m.name for m in rmap.header.models)
    raise ValueError(f"{rmap.oem} has no model {name!r}; choose one of: {names}")
