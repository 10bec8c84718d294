"""A simulated device's request pacing: it counts the spacing of requests and, like a slow
dongle, can refuse requests that arrive closer than ``min_spacing_s`` after the previous one.

The spacing is measured from the moment the previous reply left to the arrival of the next
request (what a client's request gap controls). A refused request gets Modbus exception
0x06 (server device busy), the answer huawei-solar-lib retries on; it also counts as a
request, so a client that keeps pushing keeps being refused.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

SPACINGS_KEPT = 100_000  # the most recent spacings kept (seconds each)


@dataclass
class RequestPacing:
    """Counts requests and their spacing; refuses those closer than ``min_spacing_s``."""

    min_spacing_s: float = 0.0
    requests: int = 0
    refused: int = 0
    spacings: deque[float] = field(default_factory=lambda: deque(maxlen=SPACINGS_KEPT))
    _last_reply: float | None = None

    def admit(self, now: float) -> bool:
        """Count a request arriving at ``now``; False when it must be refused."""
        self.requests += 1
        if self._last_reply is None:
            return True
        spacing = now - self._last_reply
        self.spacings.append(spacing)
        if spacing < self.min_spacing_s:
            self.refused += 1
            return False
        return True

    def replied(self, now: float) -> None:
        self._last_reply = now

    def since(self, count: int) -> list[float]:
        """Spacings of the requests after the first ``count`` requests (tests, doctor)."""
        skip = max(0, count - (self.requests - len(self.spacings)))
        return list(self.spacings)[skip:]


class _PacedHandler(ServerRequestHandler):
    """pymodbus's request handler with the simulator's pacing in front of it."""

    pacing: RequestPacing

    async def handle_request(self) -> None:
        pdu = self.last_pdu
        if pdu is None:
            return
        if not self.pacing.admit(time.monotonic()):
            busy = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_BUSY)
            busy.transaction_id = pdu.transaction_id
            busy.dev_id = pdu.dev_id
            self.server_send(busy, self.last_addr)
        else:
            await super().handle_request()  # type: ignore[no-untyped-call]  # pymodbus

    def server_send(self, pdu: Any, addr: Any) -> None:
        """Every reply goes out here: its instant is noted first, so no client can see the
        reply before the simulator counts it sent (with the client in another thread, the
        note taken after the send could come later than the client's next request)."""
        self.pacing.replied(time.monotonic())
        super().server_send(pdu, addr)  # type: ignore[no-untyped-call]  # pymodbus


class PacedTcpServer(ModbusTcpServer):
    """A pymodbus TCP server whose connections share one :class:`RequestPacing`."""

    def __init__(self, *args: Any, pacing: RequestPacing, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pacing = pacing

    def callback_new_connection(self) -> ServerRequestHandler:
        handler = _PacedHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]  # pymodbus
        handler.pacing = self.pacing
        return handler
