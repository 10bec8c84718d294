"""Modbus TCP transport: the ONLY module importing pymodbus client code (pinned 3.12.1).

One client per device and one turn-taking lock per client, so requests on a connection never
overlap; a waiting write always goes before waiting reads ("writes as early as possible, reads
as late as possible"): a command queued behind telemetry polling is sent as soon as the request
in flight completes and the map's gaps allow, not after the rest of the poll. Request gap (between
any two requests), write gap (between two writes), read-back settle (after a write, before the
next holding-register read: what was written is read back only once the device settled), settle
time after connect, timeouts and reconnect with capped exponential backoff come from the map's
`connection:` section. Failures become typed errors
(edge.hal.errors), are counted per device and move it to DEGRADED / OFFLINE; while a device
waits for its next reconnect slot, calls fail fast instead of stalling the caller.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from edge.hal.errors import (
    DeviceTimeoutError,
    DeviceUnreachableError,
    MalformedReplyError,
    ModbusExceptionError,
    TransportError,
)
from edge.hal.registermap import Connection

EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x06: "server device busy",
    0x0B: "gateway target failed to respond",
    0x80: "permission denied (Huawei: installer login needed)",
}

OFFLINE_AFTER = 3  # consecutive connection-level failures


def _reraise_cancellation() -> None:
    """pymodbus turns OUR cancellation into "Request cancelled outside library." (and wait_for
    hands that back): give the caller its cancellation back, or a cancelled poll loop would
    take it for a device timeout and go on forever (a bridge that never stops)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _retrieved(request: asyncio.Future[ModbusPDU]) -> None:
    if not request.cancelled():
        request.exception()


class Health(enum.StrEnum):
    ONLINE = "ONLINE"
    DEGRADED = "DEGRADED"
    OFFLINE = "OFFLINE"


@dataclass
class TransportStats:
    requests: int = 0
    reads: int = 0
    writes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    consecutive_failures: int = 0
    connects: int = 0
    last_error: str | None = None
    last_rtt_s: float | None = None
    replies: int = 0  # requests answered (a Modbus exception reply included)
    rtt_sum_s: float = 0.0  # their round trips, summed


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap_s, self.base_s * 2 ** max(0, failures - 1)))


class Turns:
    """Mutual exclusion in which waiting writes go before waiting reads (FIFO within each).

    The holder hands the turn straight to the next waiter on release, so a read arriving
    later can never slip in ahead of a queued write.
    """

    def __init__(self) -> None:
        self._busy = False
        self._writes: deque[asyncio.Future[None]] = deque()
        self._reads: deque[asyncio.Future[None]] = deque()

    @property
    def waiting_writes(self) -> int:
        return sum(1 for f in self._writes if not f.done())

    async def acquire(self, write: bool) -> None:
        if not self._busy and not self._writes and not self._reads:
            self._busy = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._writes if write else self._reads
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed the turn while being cancelled: pass it on
            elif fut in queue:  # release() may already have skipped it
                queue.remove(fut)
            raise

    def release(self) -> None:
        for queue in (self._writes, self._reads):
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # the turn passes on; _busy stays True
                    return
        self._busy = False

    @asynccontextmanager
    async def hold(self, write: bool) -> AsyncIterator[None]:
        await self.acquire(write)
        try:
            yield
        finally:
            self.release()


class ModbusTransport:
    """Serialized async Modbus TCP client for one device (host, port, unit id)."""

    def __init__(
        self,
        host: str,
        port: int,
        unit_id: int,
        connection: Connection,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.connection = connection
        self.backoff = backoff or Backoff()
        self.stats = TransportStats()
        self.health = Health.OFFLINE
        self._client: AsyncModbusTcpClient | None = None
        self._turns = Turns()
        self._next_request_at = 0.0
        self._next_write_at = 0.0
        self._next_holding_read_at = 0.0
        self._next_connect_at = 0.0
        self._last_done: float | None = None  # when the last request completed
        self._last_write_done: float | None = None

    def __repr__(self) -> str:
        return f"ModbusTransport({self.host}:{self.port} unit {self.unit_id}, {self.health})"

    async def close(self) -> None:
        async with self._turns.hold(write=True):
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def apply_timing(self, connection: Connection) -> None:
        """Use ``connection``'s settle, gaps and timeouts from the next request on.

        The gaps after the last request are re-based on it (a slower link's gap applies to
        the very next request, a faster one's too); the settle applies to the next connect.
        """
        self.connection = connection
        if self._last_done is not None:
            self._next_request_at = self._last_done + connection.request_gap_s
        if self._last_write_done is not None:
            self._next_write_at = self._last_write_done + connection.write_gap_s
            self._next_holding_read_at = self._last_write_done + connection.readback_settle_s

    def retarget(self, host: str, port: int | None = None) -> None:
        """Follow a device to a new address (rediscovery); reconnects on next request."""
        self._drop()
        self.host = host
        self.port = port or self.port
        self._next_connect_at = 0.0

    def _fail(self, exc: TransportError, *, connection_level: bool) -> TransportError:
        self.stats.errors[exc.kind] += 1
        self.stats.last_error = str(exc)
        if connection_level:
            self.stats.consecutive_failures += 1
            self._drop()
            self._next_connect_at = time.monotonic() + self.backoff.delay(
                self.stats.consecutive_failures
            )
            if self.stats.consecutive_failures >= OFFLINE_AFTER:
                self.health = Health.OFFLINE
            else:
                self.health = Health.DEGRADED
        else:
            self.health = Health.DEGRADED
        return exc

    async def _ensure_connected(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        wait = self._next_connect_at - time.monotonic()
        if wait > 0:
            raise self._fail(
                DeviceUnreachableError(
                    f"{self.host}:{self.port} backing off for {wait:.1f}s after "
                    f"{self.stats.consecutive_failures} failures ({self.stats.last_error})"
                ),
                connection_level=False,
            )
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.connection.timeout_s,
            retries=0,
            reconnect_delay=0,
        )
        self.stats.connects += 1
        try:
            ok = await asyncio.wait_for(client.connect(), self.connection.timeout_s + 1.0)
        except (TimeoutError, OSError, ModbusException):
            _reraise_cancellation()
            ok = False
        if not ok:
            client.close()
            raise self._fail(
                DeviceUnreachableError(f"cannot connect to {self.host}:{self.port}"),
                connection_level=True,
            )
        self._client = client
        if self.connection.connect_settle_s:
            await asyncio.sleep(self.connection.connect_settle_s)
        self._next_request_at = time.monotonic()
        return client

    def _due_at(self, is_write: bool, holding: bool = False) -> float:
        if is_write:
            return max(self._next_request_at, self._next_write_at)
        return max(self._next_request_at, self._next_holding_read_at if holding else 0.0)

    async def _pace(self, is_write: bool, holding: bool = False) -> None:
        wait = self._due_at(is_write, holding) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _take_turn(self, is_write: bool, holding: bool = False) -> None:
        """Hold the connection with the gaps elapsed; a read never holds it while it waits.

        A read waits out the request gap first and only then queues for the turn (again if a
        write went in meanwhile), so a write arriving in the gap goes next. A write waits out
        its gaps while holding the turn: nothing may go before it anyway.
        """
        while True:
            if not is_write:
                await self._pace(False, holding)
            await self._turns.acquire(is_write)
            if is_write or self._due_at(False, holding) <= time.monotonic():
                return
            self._turns.release()

    async def _call(
        self,
        what: str,
        is_write: bool,
        send: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
        holding: bool = False,
    ) -> list[int]:
        await self._take_turn(is_write, holding)
        try:
            return await self._send(what, is_write, send, holding)
        finally:
            self._turns.release()

    async def _send(
        self,
        what: str,
        is_write: bool,
        send: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
        holding: bool = False,
    ) -> list[int]:
        client = await self._ensure_connected()
        await self._pace(is_write, holding)
        self.stats.requests += 1
        started = time.monotonic()
        try:
            request = asyncio.ensure_future(send(client))
            # cancelled from outside (shutdown), pymodbus ends the request with an I/O error
            # nobody awaits any more: retrieve it here, not as "exception never retrieved"
            request.add_done_callback(_retrieved)
            reply = await asyncio.wait_for(request, self.connection.timeout_s + 1.0)
        except (TimeoutError, ModbusIOException) as exc:
            _reraise_cancellation()
            raise self._fail(
                DeviceTimeoutError(f"{what}: no reply in {self.connection.timeout_s}s ({exc})"),
                connection_level=True,
            ) from None
        except (ConnectionException, OSError) as exc:
            raise self._fail(
                DeviceUnreachableError(f"{what}: connection lost ({exc})"),
                connection_level=True,
            ) from None
        except ModbusException as exc:
            raise self._fail(MalformedReplyError(f"{what}: {exc}"), connection_level=True) from None
        finally:
            done = time.monotonic()
            self._last_done = done
            self._next_request_at = done + self.connection.request_gap_s
            if is_write:
                self._last_write_done = done
                self._next_write_at = done + self.connection.write_gap_s
                self._next_holding_read_at = done + self.connection.readback_settle_s
        stats = self.stats
        stats.last_rtt_s = done - started
        stats.replies += 1
        stats.rtt_sum_s += stats.last_rtt_s
        if reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            raise self._fail(
                ModbusExceptionError(code, f"{what}: {EXCEPTION_NAMES.get(code, 'unknown')}"),
                connection_level=False,
            )
        registers = list(getattr(reply, "registers", []) or [])
        self.stats.consecutive_failures = 0
        self.health = Health.ONLINE
        return registers

    async def read(self, table: str, address: int, count: int) -> list[int]:
        fc = 3 if table == "holding" else 4
        what = f"FC{fc:02d} read {address}+{count}"
        unit = self.unit_id

        async def send(client: AsyncModbusTcpClient) -> ModbusPDU:
            if fc == 3:
                return await client.read_holding_registers(address, count=count, device_id=unit)
            return await client.read_input_registers(address, count=count, device_id=unit)

        registers = await self._call(what, False, send, holding=fc == 3)
        self.stats.reads += 1
        if len(registers) != count:
            raise self._fail(
                MalformedReplyError(f"{what}: got {len(registers)} registers"),
                connection_level=False,
            )
        return registers

    async def write(self, fc: int, address: int, values: list[int]) -> None:
        if fc == 6 and len(values) != 1:
            raise MalformedReplyError("FC06 writes exactly one register")
        if fc not in (6, 16):
            raise MalformedReplyError(f"unsupported write function code {fc}")
        unit = self.unit_id

        async def send(client: AsyncModbusTcpClient) -> ModbusPDU:
            if fc == 6:
                return await client.write_register(address, values[0], device_id=unit)
            return await client.write_registers(address, values, device_id=unit)

        await self._call(f"FC{fc:02d} write {address}", True, send)
        self.stats.writes += 1
