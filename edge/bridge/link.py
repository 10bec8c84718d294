"""The Modbus link of one site as DeviceStatus reports it: errors, state, address, cadence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contract.enums import DeviceState, SiteMode
from edge.bridge.events import LinkStatus
from edge.hal.capabilities import Rediscover
from edge.hal.errors import HalError, TransportError

OFFLINE_AFTER = 3  # consecutive transport failures
REASSERT_MIN_S = 5.0  # at most one re-write of the setpoint per this many seconds
CONTROLLED = (SiteMode.REMOTE, SiteMode.FORCED)


@dataclass
class Link:
    host: str
    port: int
    unit_id: int
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    rtt_ms: float | None = None
    rediscovered: bool = False
    rediscover_at: datetime | None = None
    _status: LinkStatus | None = None
    _status_at: datetime | None = None

    def failed(self, exc: HalError) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, TransportError):
            self.consecutive_errors += 1

    def ok(self, rtt_ms: float) -> None:
        self.rtt_ms = rtt_ms
        self.consecutive_errors = 0

    def moved(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.rediscovered = True
        self.consecutive_errors = 0

    async def rediscover_if_due(
        self, rediscover: Rediscover, serial: str, now: datetime, every_s: float
    ) -> tuple[str, int] | None:
        """Look for ``serial`` elsewhere at most every ``every_s``; where it moved, or None."""
        if self.rediscover_at is not None and (now - self.rediscover_at).total_seconds() < every_s:
            return None
        self.rediscover_at = now
        try:
            found = await rediscover(serial)
        except HalError as exc:
            self.failed(exc)
            return None
        if found is not None:
            self.moved(*found)
        return found

    def state(self, polled: bool) -> DeviceState:
        """OFFLINE until the first good poll and after OFFLINE_AFTER transport failures."""
        if self.consecutive_errors >= OFFLINE_AFTER or not polled:
            return DeviceState.OFFLINE
        if self.consecutive_errors:
            return DeviceState.DEGRADED
        return DeviceState.REDISCOVERED if self.rediscovered else DeviceState.ONLINE

    def status_due(self, st: LinkStatus, now: datetime, every_s: float) -> bool:
        """Publish on a change of state/address, and every ``every_s`` anyway."""
        due = self._status_at is None or (now - self._status_at).total_seconds() >= every_s
        if st.changed(self._status) or due:
            self._status, self._status_at = st, now
            return True
        return False
