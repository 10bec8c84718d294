"""A write queued while telemetry is being polled goes next: after the request on the wire and
the map's request gap, never after the rest of the poll (real simulator, real gaps)."""

from __future__ import annotations

import asyncio
import time

from edge.hal.device import Device
from edge.hal.maps import MAPS_DIR, load_map
from edge.hal.points import Command
from edge.hal.transport import ModbusTransport
from edge.sim.server import SimInverter
from edge.testing.harness import free_port

RMAP = load_map(MAPS_DIR / "saj.yaml")  # the most telemetry blocks (8) per poll
GAP_S = 0.25
CONN = RMAP.connection.model_copy(
    update={"connect_settle_s": 0.0, "request_gap_s": GAP_S, "write_gap_s": 0.0}
)


def test_writes_wait_at_most_one_request_and_one_gap_behind_polling() -> None:
    async def body() -> tuple[list[float], int]:
        sim = SimInverter(RMAP, port=free_port())
        await sim.start()
        dev = Device(RMAP, ModbusTransport(sim.host, sim.port, sim.unit_id, CONN))
        await dev.identify()  # the plan needs the rated power
        polls = 0

        async def poll_forever() -> None:
            nonlocal polls
            while True:
                await dev.read_telemetry()
                polls += 1

        poller = asyncio.create_task(poll_forever())
        waits: list[float] = []
        try:
            await asyncio.sleep(0.3)
            for i in range(6):
                await asyncio.sleep(0.07 * (i + 1))  # at varying points of the poll
                write = dev.plan_command(Command.set_power(1.0 + 0.5 * i)).writes[0]
                t0 = time.monotonic()
                await dev.transport.write(write.fc, write.address, list(write.values))
                waits.append(time.monotonic() - t0)
        finally:
            poller.cancel()
            await dev.transport.close()
            await sim.stop()
        return waits, polls

    waits, polls = asyncio.run(body())
    # One read in flight (a few ms) plus what is left of its gap; a plain FIFO lock with the
    # gap waited inside it takes up to two gaps, a queue behind the whole poll up to 8.
    assert max(waits) < GAP_S + 0.1, waits
    assert polls <= 1  # one poll (8 reads, 8 gaps: 2 s) was running throughout
