"""Edge HAL benchmarks against the simulators on loopback.

- Modbus requests per telemetry poll vs the exact minimum number of contiguous blocks the
  OEM's limits allow (goal 1.0x);
- poll time per site vs a single-register read round trip measured in the same run
  (no pacing, so the ratio is the protocol cost), and with the map's own pacing vs its
  pacing floor (requests x request gap);
- resident memory of one process polling one site vs a bare interpreter (goal <= 60 MB).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import textwrap
import time

from bench import BenchResult
from edge.hal.blocks import Span, minimum_blocks
from edge.hal.decode import telemetry_points
from edge.hal.device import Device
from edge.hal.maps import load_all
from edge.hal.registermap import RegisterMap
from edge.hal.transport import ModbusTransport
from edge.sim.server import SimInverter

POLLS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _unpaced(rmap: RegisterMap) -> RegisterMap:
    conn = rmap.connection.model_copy(
        update={"connect_settle_s": 0.0, "request_gap_s": 0.0, "write_gap_s": 0.0}
    )
    return rmap.model_copy(update={"connection": conn})


async def _site(rmap: RegisterMap) -> list[BenchResult]:
    fast = _unpaced(rmap)
    sim = SimInverter(fast, port=_free_port())
    await sim.start()
    transport = ModbusTransport("127.0.0.1", sim.port, sim.unit_id, fast.connection)
    device = Device(fast, transport)
    try:
        await device.identify()
        before = transport.stats.requests
        await device.read_telemetry()
        requests = transport.stats.requests - before
        names = telemetry_points(fast)
        spans = [
            Span(fast.point(n).table, fast.point(n).address, fast.point(n).count) for n in names
        ]
        c = fast.connection
        floor = minimum_blocks(spans, c.max_registers_per_read, c.max_read_gap)

        model = fast.point(fast.identification.model)
        single = []
        for _ in range(POLLS):
            started = time.perf_counter()
            await transport.read(model.table, model.address, 1)
            single.append(time.perf_counter() - started)
        polls = []
        for _ in range(POLLS):
            started = time.perf_counter()
            await device.read_telemetry()
            polls.append(time.perf_counter() - started)

        # the simulator answers like the inverter's own LAN port: that link's pacing
        link = "lan" if "lan" in rmap.timing.links else None
        lan = rmap if link is None else rmap.with_link(link)
        paced = ModbusTransport("127.0.0.1", sim.port, sim.unit_id, lan.connection)
        paced_device = Device(rmap, paced, link=link)
        await paced_device.identify()
        paced_polls = []
        for _ in range(5):
            started = time.perf_counter()
            await paced_device.read_telemetry()
            paced_polls.append(time.perf_counter() - started)
        await paced.close()
    finally:
        await transport.close()
        await sim.stop()
    oem = rmap.oem
    pacing_floor = requests * lan.connection.request_gap_s
    return [
        BenchResult(
            name=f"edge.{oem}.requests_per_poll",
            value=float(requests),
            unit="requests",
            baseline=float(floor),
            goal="1.0x the minimum contiguous blocks within the OEM limits",
            higher_is_better=False,
            note=f"{len(names)} points, max {c.max_registers_per_read} regs, gap {c.max_read_gap}",
        ),
        BenchResult(
            name=f"edge.{oem}.poll_time_unpaced",
            value=statistics.median(polls) * 1000,
            unit="ms",
            baseline=statistics.median(single) * 1000,
            goal="about requests-per-poll x one round trip",
            higher_is_better=False,
            note="median of 30 polls vs median single-register read, loopback, no gaps",
        ),
        BenchResult(
            name=f"edge.{oem}.poll_time_paced",
            value=statistics.median(paced_polls) * 1000,
            unit="ms",
            baseline=pacing_floor * 1000 if pacing_floor else None,
            goal="close to the pacing floor (requests x request gap)",
            higher_is_better=False,
            note=f"map pacing, link {lan.connection.link}: request gap "
            f"{lan.connection.request_gap_s:g} s",
        ),
    ]


RSS_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    def rss_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    if sys.argv[1] == "bare":
        print(rss_kb()); raise SystemExit
    from edge.hal.device import Device
    from edge.hal.maps import load_all
    from edge.hal.transport import ModbusTransport
    async def main():
        rmap = load_all()[sys.argv[1]]
        conn = rmap.connection.model_copy(update={"connect_settle_s": 0.0, "request_gap_s": 0.0})
        port, unit = int(sys.argv[2]), int(sys.argv[3])
        device = Device(rmap, ModbusTransport("127.0.0.1", port, unit, conn))
        await device.identify()
        for _ in range(200):
            await device.read_telemetry()
            await device.read_faults()
        await device.transport.close()
    asyncio.run(main())
    print(rss_kb())
    """
)


async def _rss(rmap: RegisterMap) -> BenchResult:
    sim = SimInverter(_unpaced(rmap), port=_free_port())
    await sim.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RSS_CHILD, rmap.oem, str(sim.port), str(sim.unit_id),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
    finally:
        await sim.stop()
    bare_proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RSS_CHILD, "bare", stdout=asyncio.subprocess.PIPE
    )
    bare, _ = await bare_proc.communicate()
    return BenchResult(
        name=f"edge.{rmap.oem}.rss_one_site",
        value=int(out.decode().split()[-1]) / 1024,
        unit="MB",
        baseline=int(bare.decode().split()[-1]) / 1024,
        goal="<= 60 MB for one process polling one site (200 polls)",
        higher_is_better=False,
        note="baseline: bare interpreter in the same run",
    )


def run() -> list[BenchResult]:
    async def main() -> list[BenchResult]:
        results: list[BenchResult] = []
        maps = load_all()
        for rmap in maps.values():
            results += await _site(rmap)
        results.append(await _rss(maps["huawei"]))
        return results

    return asyncio.run(main())


if __name__ == "__main__":
    for r in run():
        print(f"{r.name:34} {r.value:9.2f} {r.unit:9} baseline {r.baseline} ratio {r.ratio}")
