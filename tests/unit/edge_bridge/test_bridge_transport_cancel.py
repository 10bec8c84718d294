"""Cancelling a task whose Modbus request is on the wire cancels it: pymodbus reports our own
cancellation as an I/O error, and the transport must not turn it into a device timeout (a
cancelled poll loop would then never end, and neither would the bridge's shutdown)."""

from __future__ import annotations

import asyncio

import pytest

from edge.hal.errors import DeviceTimeoutError
from edge.hal.maps import load_all
from edge.hal.transport import ModbusTransport


class SilentServer:
    """Accepts connections, reads requests, never answers."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            while await reader.read(1024):
                pass

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
            await w.wait_closed()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.parametrize("cancel_after_s", [0.05, 0.3])
def test_cancel_during_a_read_is_a_cancellation(cancel_after_s: float) -> None:
    async def body() -> None:
        silent = SilentServer()
        await silent.start()
        port = silent.port
        conn = load_all()["huawei"].connection.model_copy(
            update={"connect_settle_s": 0.0, "timeout_s": 3.0}
        )
        transport = ModbusTransport("127.0.0.1", port, 1, conn)
        try:
            task = asyncio.create_task(transport.read("holding", 32064, 2))
            await asyncio.sleep(cancel_after_s)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not transport.stats.errors  # not counted as a device failure
        finally:
            await transport.close()
            await silent.stop()

    asyncio.run(asyncio.wait_for(body(), 20))


def test_an_unanswered_read_still_times_out() -> None:
    async def body() -> None:
        silent = SilentServer()
        await silent.start()
        port = silent.port
        conn = load_all()["huawei"].connection.model_copy(
            update={"connect_settle_s": 0.0, "timeout_s": 0.3}
        )
        transport = ModbusTransport("127.0.0.1", port, 1, conn)
        try:
            with pytest.raises(DeviceTimeoutError):
                await transport.read("holding", 32064, 2)
        finally:
            await transport.close()
            await silent.stop()

    asyncio.run(asyncio.wait_for(body(), 20))
