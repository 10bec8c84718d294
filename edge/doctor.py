"""Connectivity doctor: find devices, identify them, measure round trips, find the unit id,
read every map point and explain each failure with what to do about it."""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.hal.device import Device
from edge.hal.errors import HalError, ModbusExceptionError, TransportError, UnknownModelError
from edge.hal.registermap import RegisterMap
from edge.hal.transport import Backoff, ModbusTransport

ADVICE_BY_CODE = {
    0x01: "The device refuses this function code: a Modbus proxy may block FC06; "
    "allow FC16-only writes.",
    0x02: "Register not supported here: check the OEM/model, firmware variant, or that "
    "the meter/battery is attached.",
    0x03: "Value refused: check the point's bounds in the map and the device's limits.",
    0x04: "Device failure answering: retry later; if it persists power-cycle the dongle.",
    0x06: "Device busy: slow polling down (larger request gap) and retry.",
    0x0A: "Gateway path unavailable: the dongle cannot reach the inverter behind it "
    "(check RS485 wiring/address).",
    0x0B: "Nothing answers this unit id: use the unit id the doctor found, or set the "
    "device's Modbus address.",
    0x80: "Permission denied: write access needs the installer login on this OEM.",
}
ADVICE_BY_KIND = {
    "unreachable": "Nothing accepts TCP here: check the IP (DHCP may have moved it: use "
    "--scan), that Modbus TCP is enabled on the inverter/dongle, and the port (e.g. 502 vs "
    "6607 after updates).",
    "timeout": "Connected but no reply: another Modbus client may hold the only connection, "
    "the unit id may be wrong, or the dongle is slow (raise timeout_s / connect_settle_s).",
    "malformed": "Short or malformed reply: a dongle firmware bug or a proxy mangling frames; "
    "prefer the inverter's own LAN port and update the dongle.",
}


def advice_for(exc: Exception) -> str:
    if isinstance(exc, ModbusExceptionError):
        return ADVICE_BY_CODE.get(exc.code, "Unexpected Modbus exception: check the OEM manual.")
    if isinstance(exc, UnknownModelError):
        return "The device reports a model this map does not list: add it to header.models after checking the register set."  # noqa: E501
    if isinstance(exc, TransportError):
        return ADVICE_BY_KIND.get(exc.kind, "Transport failure: check network and device.")
    return "See the error text."


@dataclass
class PointResult:
    point: str
    address: int
    table: str
    value: Any = None
    error: str | None = None
    advice: str | None = None


@dataclass
class Report:
    host: str
    open_ports: list[int] = field(default_factory=list)
    oem: str | None = None
    port: int | None = None
    unit_id: int | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    variant: str | None = None
    rtt_ms: float | None = None
    attempts: list[str] = field(default_factory=list)
    points: list[PointResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.oem is not None and not any(p.error for p in self.points)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def lines(self) -> list[str]:
        out = [f"host {self.host}: open Modbus ports {self.open_ports or 'none'}"]
        out += [f"  tried {a}" for a in self.attempts]
        if self.oem:
            out.append(
                f"  FOUND {self.oem} {self.model} serial {self.serial} firmware {self.firmware}"
                f" on port {self.port} unit id {self.unit_id}; round trip {self.rtt_ms:.1f} ms"
                + (f"; variant {self.variant}" if self.variant else "")
            )
        failed = [p for p in self.points if p.error]
        if self.points:
            out.append(f"  read {len(self.points)} points, {len(failed)} failed")
        for p in self.points:
            if p.error:
                out.append(
                    f"    {p.point} @ {p.address} ({p.table}): {p.error}\n      -> {p.advice}"
                )
        out += [f"  PROBLEM: {p}" for p in self.problems]
        return out


async def _port_open(host: str, port: int, timeout_s: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


def _with(rmap: RegisterMap, settle_s: float | None, timeout_s: float) -> RegisterMap:
    update: dict[str, float] = {"timeout_s": timeout_s}
    if settle_s is not None:
        update["connect_settle_s"] = settle_s
    return rmap.model_copy(update={"connection": rmap.connection.model_copy(update=update)})


async def diagnose(
    host: str,
    maps: list[RegisterMap],
    *,
    ports: list[int] | None = None,
    unit_ids: list[int] | None = None,
    settle_s: float | None = None,
    timeout_s: float = 2.0,
) -> Report:
    report = Report(host)
    candidates = ports or sorted({p for m in maps for p in m.connection.ports})
    for port in candidates:
        if await _port_open(host, port, timeout_s):
            report.open_ports.append(port)
    if not report.open_ports:
        report.problems.append(
            f"no TCP port of {candidates} accepts connections. {ADVICE_BY_KIND['unreachable']}"
        )
        return report
    for port in report.open_ports:
        for base in maps:
            rmap = _with(base, settle_s, timeout_s)
            for unit in unit_ids or rmap.connection.unit_ids:
                transport = ModbusTransport(
                    host, port, unit, rmap.connection, backoff=Backoff(0, 0)
                )
                device = Device(rmap, transport)
                try:
                    ident = await device.identify()
                except HalError as exc:
                    report.attempts.append(
                        f"{rmap.oem} port {port} unit {unit}: {exc} -> {advice_for(exc)}"
                    )
                    await transport.close()
                    continue
                report.attempts.append(f"{rmap.oem} port {port} unit {unit}: identified")
                report.oem, report.port, report.unit_id = ident.oem, port, unit
                report.model, report.serial, report.firmware = (
                    ident.model,
                    ident.serial,
                    ident.firmware,
                )
                report.variant = ident.variant
                try:
                    report.rtt_ms = await _rtt(device)
                    report.points = await _read_every_point(device)
                finally:
                    await transport.close()
                return report
    report.problems.append(
        "no map identified the device: wrong OEM, unit id or a dongle in the way"
    )
    return report


async def _rtt(device: Device, samples: int = 5) -> float:
    p = device.rmap.point(device.rmap.identification.model)
    times = []
    for _ in range(samples):
        await device.transport.read(p.table, p.address, 1)
        times.append((device.transport.stats.last_rtt_s or 0.0) * 1000.0)
    return statistics.median(times)


async def _read_every_point(device: Device) -> list[PointResult]:
    results = []
    for name, p in sorted(device.rmap.points.items(), key=lambda kv: (kv[1].table, kv[1].address)):
        result = PointResult(name, p.address, p.table)
        try:
            result.value = (await device.read_points([name]))[name]
        except HalError as exc:
            result.error = str(exc)
            result.advice = advice_for(exc)
        results.append(result)
    return results
