"""Opening a site's device: its register map over a Modbus TCP transport, and finding it again.

The bridge gets a :class:`OpenDevice` (the device, how to release it and, where the site
config names hosts to scan, how to look for it by serial after DHCP moved it) and never sees
the transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge.hal.capabilities import Rediscover, SiteDevice
from edge.hal.control import ControlPolicy
from edge.hal.device import Device
from edge.hal.discovery import expand_hosts, locate
from edge.hal.registermap import RegisterMap
from edge.hal.transport import ModbusTransport


@dataclass
class OpenDevice:
    """A device, how to release it and (optionally) how to find it again by serial."""

    device: SiteDevice
    close: Callable[[], Awaitable[None]]
    rediscover: Rediscover | None = None


def open_device(
    rmap: RegisterMap,
    host: str,
    port: int,
    unit_id: int,
    *,
    policy: ControlPolicy | None = None,
    link: str | None = None,
    variant: str | None = None,
    rediscover_hosts: str | None = None,
    rediscover_ports: list[int] | None = None,
) -> OpenDevice:
    """The device at ``host:port`` (nothing is connected before its first request).

    ``link`` / ``variant``: the site config's connection type and firmware variant (else
    identification decides; an unknown name raises MapError here).

    ``rediscover_hosts`` ('192.168.1.0/24', '10.0.0.5-40', 'a,b'): where to look for the
    device's serial when it stops answering; ports ``rediscover_ports`` (default: the map's).
    """
    transport = ModbusTransport(host, port, unit_id, rmap.connection)
    rediscover = None
    if rediscover_hosts:
        hosts = expand_hosts(rediscover_hosts)

        async def rediscover_fn(serial: str) -> tuple[str, int] | None:
            found = await locate(serial, hosts, rmap, ports=rediscover_ports)
            if found is None:
                return None
            transport.retarget(found.host, found.port)
            return found.host, found.port

        rediscover = rediscover_fn
    device = Device(rmap, transport, link=link, variant=variant, policy=policy)
    return OpenDevice(device, transport.close, rediscover)
