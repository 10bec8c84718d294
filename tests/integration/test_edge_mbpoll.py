"""Debian's mbpoll, an independent Modbus master, reads the simulators at documented addresses."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket

import pytest

from edge.hal.maps import load_all
from edge.sim.server import SimInverter

MAPS = load_all()
MBPOLL = shutil.which("mbpoll")
pytestmark = pytest.mark.skipif(
    MBPOLL is None, reason="mbpoll missing: make java installs it (apt-get install mbpoll)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def mbpoll(port: int, unit: int, table: str, address: int, count: int = 1) -> list[int]:
    """Read with 0-based PDU addresses (-0); -t 4 = holding, -t 3 = input registers."""
    assert MBPOLL is not None
    kind = "4" if table == "holding" else "3"
    proc = await asyncio.create_subprocess_exec(
        MBPOLL, "-m", "tcp", "-a", str(unit), "-p", str(port), "-t", kind, "-0", "-1",
        "-r", str(address), "-c", str(count), "-o", "2", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    found = dict(re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out.decode(), re.MULTILINE))
    values = [int(found[str(address + i)]) for i in range(count)]
    return [v & 0xFFFF for v in values]


# (oem, point, documented wire address, table, expected engineering value from the sim)
CASES = [
    ("huawei", "soc", 37760, "holding"),
    ("huawei", "grid_frequency", 32085, "holding"),
    ("sungrow", "soc", 13022, "input"),  # doc 13023
    ("sungrow", "device_type", 4999, "input"),  # doc 5000
    ("saj", "battery_soc", 0x406F, "holding"),
    ("saj", "device_type", 0x8F00, "holding"),
]


@pytest.mark.parametrize(("oem", "point", "address", "table"), CASES)
def test_mbpoll_sees_documented_addresses(oem: str, point: str, address: int, table: str) -> None:
    rmap = MAPS[oem]
    p = rmap.point(point)
    assert (p.address, p.table) == (address, table)

    async def body() -> None:
        sim = SimInverter(rmap, port=free_port(), soc_pct=73.5)
        await sim.start()
        try:
            regs = await mbpoll(sim.port, sim.unit_id, table, address)
            assert regs == sim.registers.raw(p)
            expected = {"soc": 73.5, "battery_soc": 73.5, "grid_frequency": 50.0}
            if point in expected:
                assert regs[0] * p.scale == pytest.approx(expected[point], abs=0.11)
            else:
                assert regs[0] == sim.model.code
        finally:
            await sim.stop()

    asyncio.run(body())


def test_mbpoll_reads_a_sungrow_u32_low_word_first() -> None:
    rmap = MAPS["sungrow"]
    p = rmap.point("pv_power")  # doc 5017-5018, U32 W, low word first

    async def body() -> None:
        sim = SimInverter(rmap, port=free_port())
        await sim.start()
        try:
            low, high = await mbpoll(sim.port, sim.unit_id, "input", p.address, 2)
            watts = (high << 16) | low
            assert watts == pytest.approx(sim.state().pv_kw * 1000, abs=20)
            assert watts > 0
        finally:
            await sim.stop()

    asyncio.run(body())
