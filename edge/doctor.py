"""Connectivity doctor: find devices, identify them, measure round trips, find the unit id,
read every map point and explain each failure with what to do about it.

It prints the connection type (link) and firmware variant identification chose and the
timing in force, each value with its source. ``measure_gap`` (``flowerhub edge doctor
--measure-gap``) measures the shortest safe request gap on the real device: it reads one
register ``requests`` times at each candidate gap, from the longest down, and counts the
requests that failed (device busy, timeouts, dropped connections); it stops after the first
gap with errors, so a dongle is pushed past its limit once. The shortest gap whose reads,
and those of every longer gap, all succeeded is the shortest safe gap observed: field data
to replace the map's cited guesses (``timing.links.<link>.request_gap_s``).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.hal.device import Device
from edge.hal.errors import HalError, ModbusExceptionError, TransportError, UnknownModelError
from edge.hal.registermap import TIMING_FIELDS, RegisterMap
from edge.hal.transport import Backoff, ModbusTransport

# Candidate request gaps (s), longest first: the maps' values lie between them.
DEFAULT_GAPS_S = (0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.0)
DEFAULT_GAP_REQUESTS = 20

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
class GapStep:
    """Requests at one request gap and how many failed (by error kind)."""

    gap_s: float
    requests: int
    errors: int
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class GapSweep:
    """Errors vs request gap, longest first, and the shortest gap found safe."""

    steps: list[GapStep]
    map_gap_s: float
    link: str

    @property
    def shortest_safe_s(self) -> float | None:
        safe = None
        for step in self.steps:
            if step.errors:
                break
            safe = step.gap_s
        return safe

    def lines(self) -> list[str]:
        out = ["  request gap sweep (errors / requests per gap):"]
        for s in self.steps:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(s.kinds.items()))
            out.append(
                f"    {s.gap_s * 1000:6.1f} ms: {s.errors}/{s.requests}"
                + (f" ({kinds})" if kinds else "")
            )
        safe = self.shortest_safe_s
        if safe is None:
            out.append("  SHORTEST SAFE GAP: none of the tested gaps was error-free")
            return out
        verdict = (
            "below the shortest safe gap measured: raise it"
            if self.map_gap_s < safe
            else "at or above it"
        )
        out.append(
            f"  SHORTEST SAFE GAP observed: {safe * 1000:g} ms (map, link {self.link}: "
            f"{self.map_gap_s * 1000:g} ms, {verdict})"
        )
        return out


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
    link: str | None = None
    timing: dict[str, float] = field(default_factory=dict)
    timing_sources: dict[str, str] = field(default_factory=dict)
    rtt_ms: float | None = None
    attempts: list[str] = field(default_factory=list)
    points: list[PointResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    gap_sweep: GapSweep | None = None

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
            out.append(f"  link {self.link}; timing in force:")
            out += [
                f"    {name} = {value:g} s  ({self.timing_sources.get(name, 'set here')})"
                for name, value in self.timing.items()
            ]
        failed = [p for p in self.points if p.error]
        if self.points:
            out.append(f"  read {len(self.points)} points, {len(failed)} failed")
        for p in self.points:
            if p.error:
                out.append(
                    f"    {p.point} @ {p.address} ({p.table}): {p.error}\n      -> {p.advice}"
                )
        if self.gap_sweep is not None:
            out += self.gap_sweep.lines()
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
    link: str | None = None,
    variant: str | None = None,
    gaps_s: Sequence[float] | None = None,
    gap_requests: int = DEFAULT_GAP_REQUESTS,
) -> Report:
    """Find and diagnose the device at ``host`` (module doc); ``gaps_s``: sweep these gaps."""
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
                try:
                    device = Device(
                        rmap,
                        transport,
                        link=link if link in rmap.timing.links else None,
                        variant=variant if variant in rmap.variants else None,
                    )
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
                report.variant, report.link = ident.variant, ident.link
                conn = transport.connection
                report.timing = {name: getattr(conn, name) for name in TIMING_FIELDS}
                sources = device.rmap.timing_sources()
                report.timing_sources = {k: v for k, v in sources.items() if k not in device.pinned}
                try:
                    report.rtt_ms = await _rtt(device)
                    report.points = await _read_every_point(device)
                    if gaps_s is not None:
                        report.gap_sweep = await measure_gap(device, gaps_s, requests=gap_requests)
                finally:
                    await transport.close()
                return report
    report.problems.append(
        "no map identified the device: wrong OEM, unit id or a dongle in the way"
    )
    return report


async def measure_gap(
    device: Device, gaps_s: Sequence[float] = DEFAULT_GAPS_S, *, requests: int = 20
) -> GapSweep:
    """Errors vs request gap on an identified device (module doc); its timing is restored."""
    if requests < 1 or not gaps_s or any(g < 0 for g in gaps_s):
        raise ValueError("needs >= 1 request per gap and gaps >= 0 s")
    transport = device.transport
    original = transport.connection
    p = device.rmap.point(device.rmap.identification.model)
    steps: list[GapStep] = []
    try:
        for gap in sorted(set(gaps_s), reverse=True):
            transport.apply_timing(original.model_copy(update={"request_gap_s": gap}))
            kinds: Counter[str] = Counter()
            for _ in range(requests):
                try:
                    await transport.read(p.table, p.address, p.count)
                except TransportError as exc:
                    kinds[exc.kind] += 1
            steps.append(GapStep(gap, requests, sum(kinds.values()), dict(kinds)))
            if kinds:
                break
    finally:
        transport.apply_timing(original)
    return GapSweep(steps, original.request_gap_s, original.link)


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
