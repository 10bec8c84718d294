"""Simulated OEM firmware: how each inverter family reacts to its control registers.

Each class reads and writes registers by map point name (never by number) through a
`Registers` view, decides the battery target (mode arbitration, timers, heartbeats,
clamping at the OEM's limits) and publishes the physical state in the OEM's own units and
signs. This is deliberately written apart from the HAL's decoding so the two cross-check.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

from edge.hal.registermap import ModelInfo


class Registers(Protocol):
    def get(self, name: str) -> float: ...

    def set(self, name: str, value: float | str) -> None: ...


@dataclass
class PhysicalState:
    """Canonical physical state of a simulated site (kW, + = discharging / export)."""

    now_s: float
    pv_kw: float
    load_kw: float
    battery_kw: float
    soc_pct: float
    frequency_hz: float
    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    faulted: bool

    @property
    def grid_kw(self) -> float:
        return self.pv_kw + self.battery_kw - self.load_kw

    @property
    def self_consumption_kw(self) -> float:
        return self.load_kw - self.pv_kw


def _w(kw: float) -> float:
    return round(kw * 1000.0)


class Firmware(ABC):
    def __init__(self, regs: Registers, model: ModelInfo, serial: str, version: str) -> None:
        self.regs = regs
        self.model = model
        self.serial = serial
        self.version = version
        self.rated_kw = model.rated_power_kw or 10.0

    @abstractmethod
    def init_registers(self, state: PhysicalState) -> None: ...

    def on_write(self, point: str, now_s: float) -> None:  # noqa: B027  # optional hook
        """Called after a client wrote `point` (already stored)."""

    @abstractmethod
    def target_kw(self, state: PhysicalState) -> float: ...

    @abstractmethod
    def publish(self, state: PhysicalState) -> None: ...

    def publish_frequency(self, hz: float) -> None:
        """Only the measured grid frequency (``publish`` writes the whole physical state)."""
        self.regs.set("grid_frequency", hz)


class HuaweiFirmware(Firmware):
    """Forcible charge/discharge for 47083 minutes overrides the working mode, then expires."""

    forced_until = 0.0

    def init_registers(self, state: PhysicalState) -> None:
        r = self.regs
        r.set("model_name", self.model.name)
        r.set("serial_number", self.serial)
        r.set("firmware_version", "V100R001C00")
        r.set("software_version", self.version)
        r.set("rated_power", _w(self.rated_kw))
        r.set("max_charge_limit", _w(state.max_charge_kw))
        r.set("max_discharge_limit", _w(state.max_discharge_kw))
        r.set("charge_cutoff_soc", 100.0)
        r.set("discharge_cutoff_soc", 5.0)
        r.set("working_mode", 2)
        r.set("forcible_target_soc", 100.0)
        for name in ("forcible_cmd", "forcible_period", "forcible_setting_mode"):
            r.set(name, 0)

    def on_write(self, point: str, now_s: float) -> None:
        if point == "forcible_cmd" and self.regs.get("forcible_cmd") in (1, 2):
            self.forced_until = now_s + 60.0 * self.regs.get("forcible_period")

    def _forced(self, now_s: float) -> int:
        cmd = int(self.regs.get("forcible_cmd"))
        if cmd and now_s >= self.forced_until:
            self.regs.set("forcible_cmd", 0)  # the timer ran out: back to the working mode
            return 0
        return cmd

    def target_kw(self, state: PhysicalState) -> float:
        r = self.regs
        max_c = r.get("max_charge_limit") / 1000.0
        max_d = r.get("max_discharge_limit") / 1000.0
        cmd = self._forced(state.now_s)
        if cmd == 1:
            return -min(r.get("forcible_charge_power") / 1000.0, max_c)
        if cmd == 2:
            return min(r.get("forcible_discharge_power") / 1000.0, max_d)
        return max(-max_c, min(max_d, state.self_consumption_kw))

    def publish(self, state: PhysicalState) -> None:
        r = self.regs
        forced = int(r.get("forcible_cmd")) in (1, 2)
        mode_b = {0: 4, 1: 3, 2: 4, 3: 2, 4: 5, 5: 6}.get(int(r.get("working_mode")), 4)
        r.set("working_mode_b", 1 if forced else mode_b)
        r.set("pv_power", _w(state.pv_kw))
        r.set("active_power", _w(state.pv_kw + state.battery_kw))
        r.set("meter_power", _w(state.grid_kw))
        r.set("meter_status", 1)
        r.set("grid_frequency", state.frequency_hz)
        r.set("device_status", 0x0200)
        r.set("max_charge_power", _w(state.max_charge_kw))
        r.set("max_discharge_power", _w(state.max_discharge_kw))
        r.set("rated_capacity", _w(state.capacity_kwh))
        r.set("soc", state.soc_pct)
        r.set("storage_status", 3 if state.faulted else 2)
        r.set("battery_power", -_w(state.battery_kw))


class SungrowFirmware(Firmware):
    """EMS mode 2/3/4 follows the command register; mode 3/4 needs the heartbeat or falls back."""

    last_heartbeat = 0.0

    def init_registers(self, state: PhysicalState) -> None:
        r = self.regs
        r.set("serial_number", self.serial)
        r.set("device_type", self.model.code or 0)
        r.set("nominal_power", self.rated_kw)
        r.set("bdc_rated_power", self.rated_kw)
        r.set("firmware_version", self.version)
        r.set("ems_mode", 0)
        r.set("ems_cmd", 0xCC)
        r.set("ems_power", 0)
        r.set("max_soc", 100.0)
        r.set("min_soc", 5.0)
        r.set("ems_heartbeat", 20)
        r.set("max_charge_power", min(10.6, state.max_charge_kw))
        r.set("max_discharge_power", min(10.6, state.max_discharge_kw))

    def on_write(self, point: str, now_s: float) -> None:
        if point in ("ems_heartbeat", "ems_mode"):
            self.last_heartbeat = now_s

    def target_kw(self, state: PhysicalState) -> float:
        r = self.regs
        mode = int(r.get("ems_mode"))
        timeout = r.get("ems_heartbeat")
        if mode in (3, 4) and timeout > 0 and state.now_s - self.last_heartbeat > timeout:
            r.set("ems_mode", 0)  # external EMS silent: fall back to self-consumption
            mode = 0
        max_c, max_d = r.get("max_charge_power"), r.get("max_discharge_power")
        if mode in (2, 3, 4):
            cmd = int(r.get("ems_cmd"))
            power = r.get("ems_power") / 1000.0
            if cmd == 0xAA:
                return -min(power, max_c)
            if cmd == 0xBB:
                return min(power, max_d)
            return 0.0
        return max(-max_c, min(max_d, state.self_consumption_kw))

    def publish(self, state: PhysicalState) -> None:
        r = self.regs
        mode = int(r.get("ems_mode"))
        running = {2: 0x0800, 3: 0x4000, 4: 0x4000}.get(mode, 0x0040)
        r.set("running_state", 0x5500 if state.faulted else running)
        flow = (state.pv_kw > 0) | (state.battery_kw < 0) << 1 | (state.battery_kw > 0) << 2
        flow |= (state.load_kw > 0) << 3 | (state.grid_kw > 0) << 4 | (state.grid_kw < 0) << 5
        r.set("power_flow", flow)
        r.set("pv_power", _w(state.pv_kw))
        r.set("battery_power", _w(state.battery_kw))
        r.set("grid_frequency", state.frequency_hz)
        r.set("meter_power", -_w(state.grid_kw))
        r.set("export_power", _w(state.grid_kw))
        r.set("load_power", _w(state.load_kw))
        r.set("battery_capacity", state.capacity_kwh)
        r.set("battery_voltage", 400.0)
        r.set("soc", state.soc_pct)


class SajFirmware(Firmware):
    """AppMode 3 (passive) follows 0x3636 and the per-mille powers; other modes self-use."""

    voltage = 51.2

    def init_registers(self, state: PhysicalState) -> None:
        r = self.regs
        r.set("device_type", self.model.code or 0)
        r.set("serial_number", self.serial)
        r.set("master_firmware", float(self.version))
        r.set("rated_power", _w(self.rated_kw))
        for name in (
            "passive_enable",
            "passive_charge_power",
            "passive_discharge_power",
            "app_mode",
        ):
            r.set(name, 0)
        r.set("charge_power_limit", min(1000, round(state.max_charge_kw / self.rated_kw * 1000)))
        r.set(
            "discharge_power_limit", min(1000, round(state.max_discharge_kw / self.rated_kw * 1000))
        )
        r.set("battery_capacity", round(state.capacity_kwh * 1000 / self.voltage))

    def target_kw(self, state: PhysicalState) -> float:
        r = self.regs
        max_c = r.get("charge_power_limit") / 1000.0 * self.rated_kw
        max_d = r.get("discharge_power_limit") / 1000.0 * self.rated_kw
        if int(r.get("app_mode")) == 3:
            enable = int(r.get("passive_enable"))
            if enable == 1:
                return min(r.get("passive_discharge_power") / 1000.0 * self.rated_kw, max_d)
            if enable == 2:
                return -min(r.get("passive_charge_power") / 1000.0 * self.rated_kw, max_c)
            return 0.0
        return max(-max_c, min(max_d, state.self_consumption_kw))

    def publish(self, state: PhysicalState) -> None:
        r = self.regs
        r.set("working_mode", 5 if state.faulted else 2)
        r.set("app_mode_effect", r.get("app_mode"))
        r.set("grid_frequency", state.frequency_hz)
        r.set("battery_voltage", self.voltage)
        r.set("battery_soc", state.soc_pct)
        b, g = state.battery_kw, state.grid_kw
        r.set("battery_direction", 0 if abs(b) < 0.005 else (1 if b > 0 else -1))
        r.set("grid_direction", 0 if abs(g) < 0.005 else (1 if g > 0 else -1))
        r.set("battery_power", _w(b))  # evcc's reading of the sign; the HAL uses |x| * direction
        r.set("grid_power", -_w(g))
        r.set("load_power", _w(state.load_kw))
        r.set("pv_power", _w(state.pv_kw))


FIRMWARE: dict[str, type[Firmware]] = {
    "huawei": HuaweiFirmware,
    "sungrow": SungrowFirmware,
    "saj": SajFirmware,
}

# OEM-specific battery response (time constant, dead time) and default firmware strings.
RESPONSE: dict[str, tuple[float, float]] = {
    "huawei": (1.5, 0.5),
    "sungrow": (1.0, 0.3),
    "saj": (2.0, 0.6),
}
DEFAULT_VERSION: dict[str, str] = {
    "huawei": "V100R001C10SPC200",
    "sungrow": "SAPPHIRE-H_01011.95.12",
    "saj": "1.234",
}
