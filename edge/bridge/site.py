"""One site: its command pipeline, telemetry loop and reserve loop, wired over what they share.

The site talks to the inverter only through the HAL capability protocol (``SiteDevice``) and
to the outside only through an :class:`EventSink` (the outbox). Three coroutines run per site,
each owning its own state:

* :meth:`SiteController.run_commands` (:class:`edge.bridge.commands.CommandPipeline`): applies
  queued commands in order, STOP first; a command's claim is on disk before its first write;
* :meth:`SiteController.run_telemetry` (:class:`edge.bridge.telemetry.TelemetryLoop`): polls at
  the interval (tiered, in the HAL), publishes, enforces expiry, keeps the inverter under
  remote control, runs the armed droop at the poll's rate;
* :meth:`SiteController.run_reserve` (:class:`edge.bridge.reserve.ReserveLoop`): while a
  product is armed, the frequency alone every ``reserve_poll_s``.

A site starts with a warning for each thing its config leaves the bridge to assume
(:meth:`edge.bridge.config.SiteConfig.assumptions`: no grid connection limit).

What they share (latest readings, the setpoint in force, the one write path with its lock) is
one explicit :class:`edge.bridge.shared.SiteShared`. Outcomes reach the disk in the disk thread
(:mod:`edge.bridge.diskwriter`); offsets are released once they are there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from contract.enums import DeviceState
from edge.bridge.commands import CommandPipeline, Persisted
from edge.bridge.config import SiteConfig
from edge.bridge.diskwriter import DiskWriter
from edge.bridge.events import Unusable
from edge.bridge.idempotency import Tracking
from edge.bridge.model import BridgeCommand
from edge.bridge.reserve import ReserveLoop
from edge.bridge.shared import SiteShared
from edge.bridge.sink import EventSink
from edge.bridge.telemetry import TelemetryLoop
from edge.hal.capabilities import Rediscover, SiteDevice

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SiteController:
    """Everything the bridge does for one site: three parts over one shared object."""

    def __init__(
        self,
        site: SiteConfig,
        device: SiteDevice,
        *,
        writer: DiskWriter,
        sink: EventSink,
        telemetry_interval_s: float = 1.0,
        status_interval_s: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
        on_persisted: Persisted | None = None,
        rediscover: Rediscover | None = None,
    ) -> None:
        self.site = site
        self.sink = sink
        for assumption in site.assumptions():
            log.warning(assumption)
        self.shared = SiteShared(site, device, clock)
        self.reserve = ReserveLoop(self.shared)
        self.commands = CommandPipeline(
            self.shared, self.reserve, writer=writer, sink=sink, on_persisted=on_persisted
        )
        self.polling = TelemetryLoop(
            self.shared,
            self.reserve,
            lambda: self.commands.queued,
            writer=writer,
            sink=sink,
            interval_s=telemetry_interval_s,
            status_interval_s=status_interval_s,
            rediscover=rediscover,
        )

    def submit(self, cmd: BridgeCommand, tracking: Tracking | None = None) -> None:
        """A command from the consumer (see :meth:`CommandPipeline.submit`)."""
        self.commands.submit(cmd, tracking)

    def refuse(self, bad: Unusable, tracking: Tracking | None = None) -> None:
        """A command record the bridge cannot act on: REJECTED with the reason, once."""
        self.commands.refuse(bad.command_id, bad.site_id, bad.valid_until, bad.reason, tracking)

    async def run_commands(self) -> None:
        await self.commands.run()

    async def run_telemetry(self, phase_s: float = 0.0) -> None:
        await self.polling.run(phase_s)

    async def run_reserve(self) -> None:
        await self.reserve.run()

    @property
    def idle(self) -> bool:
        """No command queued, being written or being observed."""
        return self.commands.idle

    async def drain(self, poll_s: float = 0.02) -> None:
        """Wait until every submitted command has its outcome (tests, shutdown)."""
        await self.commands.drain(poll_s)

    async def stop_observers(self) -> None:
        """Shutdown: stop the read-backs still waiting."""
        await self.commands.stop_observers()

    def link_state(self) -> DeviceState:
        return self.shared.link_state()
