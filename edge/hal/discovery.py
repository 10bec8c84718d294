"""Rediscovery: scan an address list or range on the OEM ports, identify by serial number,
and follow a device whose (DHCP) address changed."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge.hal.device import Device
from edge.hal.errors import HalError, TransportError
from edge.hal.points import Identity
from edge.hal.registermap import RegisterMap
from edge.hal.transport import Backoff, ModbusTransport


@dataclass(frozen=True)
class Found:
    host: str
    port: int
    unit_id: int
    identity: Identity
    rtt_s: float


def expand_hosts(spec: str) -> list[str]:
    """'127.0.0.1-5', '192.168.1.0/29', 'a,b,c' or one host -> list of hosts."""
    hosts: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if "/" in part:
            net = ipaddress.ip_network(part, strict=False)
            hosts += [str(h) for h in (net.hosts() if net.num_addresses > 2 else net)]
        elif "-" in part:
            first, last = part.rsplit("-", 1)
            base = ipaddress.ip_address(first)
            end = int(last) if "." not in last else int(str(last).rsplit(".", 1)[1])
            start = int(str(base).rsplit(".", 1)[1])
            if end < start or end > 255:
                raise ValueError(f"bad range {part!r}")
            prefix = str(base).rsplit(".", 1)[0]
            hosts += [f"{prefix}.{i}" for i in range(start, end + 1)]
        else:
            hosts.append(part)
    return hosts


def probe_connection(rmap: RegisterMap, timeout_s: float | None) -> RegisterMap:
    if timeout_s is None:
        return rmap
    conn = rmap.connection.model_copy(update={"timeout_s": timeout_s})
    return rmap.model_copy(update={"connection": conn})


async def probe(
    host: str,
    rmap: RegisterMap,
    *,
    ports: Sequence[int] | None = None,
    unit_ids: Sequence[int] | None = None,
    timeout_s: float | None = None,
) -> Found | None:
    """Try the map's ports and unit ids on one host; the first that identifies wins."""
    rmap = probe_connection(rmap, timeout_s)
    for port in ports or rmap.connection.ports:
        for unit in unit_ids or rmap.connection.unit_ids:
            transport = ModbusTransport(host, port, unit, rmap.connection, backoff=Backoff(0, 0))
            try:
                started = time.monotonic()
                identity = await Device(rmap, transport).identify()
                return Found(host, port, unit, identity, time.monotonic() - started)
            except TransportError as exc:
                if exc.kind in ("unreachable",):
                    break  # nothing listens on this port: skip the other unit ids
            except HalError:
                continue
            finally:
                await transport.close()
    return None


async def scan(
    hosts: Iterable[str],
    rmaps: Sequence[RegisterMap],
    *,
    ports: Sequence[int] | None = None,
    timeout_s: float | None = 1.0,
    concurrency: int = 32,
) -> list[Found]:
    """Identify every device in `hosts` with any of `rmaps`; unreachable hosts are skipped."""
    limit = asyncio.Semaphore(concurrency)

    async def one(host: str) -> Found | None:
        async with limit:
            for rmap in rmaps:
                found = await probe(host, rmap, ports=ports, timeout_s=timeout_s)
                if found is not None:
                    return found
            return None

    results = await asyncio.gather(*(one(h) for h in hosts))
    return [r for r in results if r is not None]


async def locate(
    serial: str,
    hosts: Iterable[str],
    rmap: RegisterMap,
    *,
    ports: Sequence[int] | None = None,
    timeout_s: float | None = 1.0,
) -> Found | None:
    for found in await scan(hosts, [rmap], ports=ports, timeout_s=timeout_s):
        if found.identity.serial == serial:
            return found
    return None


async def follow(device: Device, hosts: Iterable[str], *, timeout_s: float | None = 1.0) -> bool:
    """Find the device's serial in `hosts` and point its transport there. True if found."""
    if device.identity is None:
        raise HalError("identify the device before following it")
    found = await locate(
        device.identity.serial,
        hosts,
        device.base_map,
        ports=[device.transport.port, *device.base_map.connection.ports],
        timeout_s=timeout_s,
    )
    if found is None:
        return False
    device.transport.retarget(found.host, found.port)
    return True


async def open_device(
    host: str,
    port: int,
    rmaps: Sequence[RegisterMap],
    *,
    unit_id: int | None = None,
    settle_s: float | None = None,
    timeout_s: float | None = None,
    link: str | None = None,
    variant: str | None = None,
) -> Device:
    """Identify the device at host:port with the first map that fits; returns it connected.

    ``link`` / ``variant``: the connection type and firmware variant the site config names
    (a name the map does not have is skipped for that map: it belongs to another OEM).
    """
    errors: list[str] = []
    for base in rmaps:
        conn_update: dict[str, float] = {}
        if settle_s is not None:
            conn_update["connect_settle_s"] = settle_s
        if timeout_s is not None:
            conn_update["timeout_s"] = timeout_s
        conn = base.connection.model_copy(update=conn_update)
        rmap = base.model_copy(update={"connection": conn})
        for unit in [unit_id] if unit_id is not None else conn.unit_ids:
            transport = ModbusTransport(host, port, unit, conn, backoff=Backoff(0.2, 5.0))
            device = Device(
                rmap,
                transport,
                link=link if link in rmap.timing.links else None,
                variant=variant if variant in rmap.variants else None,
            )
            try:
                await device.identify()
            except HalError as exc:
                errors.append(f"{rmap.oem} unit {unit}: {exc}")
                await transport.close()
                continue
            return device
    raise HalError(f"no map identified {host}:{port}: " + "; ".join(errors))
