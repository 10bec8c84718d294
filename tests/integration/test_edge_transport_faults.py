"""Transport against misbehaving peers: short replies, exceptions, the sim CLI process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import sys

import pytest

from edge.hal.capabilities import BatteryDevice
from edge.hal.device import Device
from edge.hal.errors import MalformedReplyError, ModbusExceptionError
from edge.hal.maps import MAPS_DIR, load_map
from edge.hal.transport import Backoff, Health, ModbusTransport

RMAP = load_map(MAPS_DIR / "saj.yaml")
CONN = RMAP.connection.model_copy(
    update={"connect_settle_s": 0.0, "request_gap_s": 0.0, "write_gap_s": 0.0, "timeout_s": 1.0}
)


async def fake_device(reply: bytes) -> tuple[asyncio.Server, int]:
    """A TCP peer answering every request with `reply` (MBAP transaction id echoed)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while header := await reader.readexactly(7):
                tid, _, length, unit = struct.unpack(">HHHB", header)
                await reader.readexactly(length - 1)
                writer.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("reply", "error", "kind"),
    [
        (bytes([0x03, 0x02, 0x00, 0x01]), MalformedReplyError, "malformed"),  # 1 register of 2
        (bytes([0x83, 0x06]), ModbusExceptionError, "exception"),  # device busy
    ],
)
def test_bad_replies_become_typed_errors(reply: bytes, error: type[Exception], kind: str) -> None:
    async def body() -> None:
        server, port = await fake_device(reply)
        transport = ModbusTransport("127.0.0.1", port, 1, CONN, backoff=Backoff(0, 0))
        try:
            with pytest.raises(error):
                await transport.read("holding", 0x4004, 2)
            assert transport.stats.errors[kind] == 1
            assert transport.health is Health.DEGRADED
        finally:
            await transport.close()
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(body(), 10))


def test_device_satisfies_the_capability_protocol() -> None:
    transport = ModbusTransport("127.0.0.1", 1, 1, CONN)
    assert isinstance(Device(RMAP, transport), BatteryDevice)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_sim_command_serves_n_devices_until_interrupted() -> None:
    port = _free_port()
    # the flowerhub.cli.edge handler directly: the root CLI also imports the other groups' modules
    script = (
        "import argparse, sys\n"
        "from flowerhub.cli import edge as cli\n"
        "p = argparse.ArgumentParser(); cli.register(p.add_subparsers())\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )

    async def body() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script,
            "sim", "--oem", "saj", "--port", str(port), "--count", "2",
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 10)).decode() for _ in range(2)]
        assert f"127.0.0.1:{port} " in lines[0]
        assert f"127.0.0.1:{port + 1} " in lines[1]
        serials = set()
        for p in (port, port + 1):
            transport = ModbusTransport("127.0.0.1", p, 1, CONN)
            try:
                serials.add((await Device(RMAP, transport).identify()).serial)
            finally:
                await transport.close()
        assert len(serials) == 2
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0

    asyncio.run(asyncio.wait_for(body(), 30))
