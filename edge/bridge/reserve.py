"""A site's reserve loop: the armed reserves, their fast frequency loop and the droop writes.

FFR and FCR-D need a response within seconds; a 1 s telemetry poll alone adds up to a second
before the bridge even sees a frequency step. While a reserve is armed, :meth:`ReserveLoop.run`
reads only the frequency every ``SiteConfig.reserve_poll_s`` (default 0.2 s) and writes the
droop power when it moved by ``min_step_kw`` (the deadband) and the map's write gap has passed
(:func:`edge.bridge.droop.fast_write_due`). It starts when an ARM_RESERVE command is in force
(:meth:`ReserveLoop.in_force`) and stops when the reserve disarms (expiry, STOP, SAFE_MODE).
The telemetry loop enforces the droop too, at its own rate (:meth:`ReserveLoop.enforce`); the
write path's lock serialises all writes.

The power to hold is computed in one place, :meth:`ReserveLoop.target`: the base in force
(:class:`edge.bridge.shared.Setpoint`) plus every armed reserve's response, bounded.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from edge.bridge.droop import Armed, DroopTarget, ReserveController, fast_write_due, needs_write
from edge.bridge.model import PowerLimits, Product, ReserveParams
from edge.bridge.shared import SiteShared
from edge.hal.errors import HalError
from edge.hal.points import Command

log = logging.getLogger(__name__)


class ReserveLoop:
    """The armed reserves of one site (keyed by product) and their frequency response."""

    def __init__(self, shared: SiteShared) -> None:
        self._shared = shared
        self._reserves = ReserveController()
        self._wake = asyncio.Event()  # set once an arm command is in force
        self.droop_writes = 0

    # ------------------------------------------------------------ the armed reserves
    @property
    def armed(self) -> Armed | None:
        return self._reserves.armed

    def arm(self, params: ReserveParams, valid_until: datetime, command_id: str) -> None:
        self._reserves.arm(params, valid_until, command_id)

    def disarm(self) -> None:
        self._reserves.disarm()

    def expire(self, now: datetime) -> bool:
        """Disarm what expired; True if something just did."""
        return self._reserves.expire(now)

    def product(self, now: datetime) -> Product:
        """What telemetry reports as armed now (NONE: nothing)."""
        return self._reserves.product(now)

    def target(self, frequency_hz: float | None, now: datetime, limits: PowerLimits) -> DroopTarget:
        """The power to hold: base in force + armed responses at ``frequency_hz``, bounded."""
        return self._reserves.target(self._shared.setpoint.base_kw, frequency_hz, now, limits)

    def in_force(self) -> None:
        """A command's writes went out: if a reserve is armed, the fast loop runs."""
        if self._reserves.armed is not None:
            self._wake.set()

    # ------------------------------------------------------------ responding
    async def enforce(self, now: datetime, frequency_hz: float | None) -> None:
        """At the telemetry poll: write the droop target when it moved by ``min_step_kw``."""
        limits = self._shared.limits
        if self._reserves.armed is None or limits is None:
            return
        target = self.target(frequency_hz, now, limits)
        last = self._shared.setpoint.last_written_kw
        if needs_write(last, target.total_kw, self._shared.site.min_step_kw):
            await self._droop_write(target.total_kw)

    async def run(self) -> None:
        """Forever: wait until a reserve is armed, then sample and respond until it disarms."""
        loop = asyncio.get_running_loop()
        every = self._shared.site.reserve_poll_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            next_at = loop.time()
            while self._reserves.armed is not None:
                try:
                    await self.step(loop.time())
                except Exception:  # a bug must not stop the reserve: log, next sample
                    log.exception("site %s: reserve fast loop", self._shared.site.site_id)
                next_at += every
                delay = next_at - loop.time()
                if delay < 0:
                    next_at, delay = loop.time(), 0.0
                await asyncio.sleep(delay)

    async def step(self, mono: float) -> None:
        """One fast sample (``mono``: loop time): read the frequency, write the target if due."""
        sh = self._shared
        try:
            freq = await sh.device.read_frequency()
        except HalError as exc:
            sh.link.failed(exc)
            return
        limits = sh.limits
        if self._reserves.armed is None or limits is None or sh.setpoint.state.in_safe_mode:
            return
        target = self.target(freq, sh.clock(), limits)
        since = mono - sh.path.written_mono
        last = sh.setpoint.last_written_kw
        if fast_write_due(last, target.total_kw, sh.site.min_step_kw, since, sh.device.write_gap_s):
            await self._droop_write(target.total_kw)

    async def _droop_write(self, target_kw: float) -> None:
        """Write the droop target (only what changes) and remember it."""
        if await self._shared.path.write(Command.set_power(target_kw), trim=True):
            self._shared.setpoint.last_written_kw = target_kw
            self.droop_writes += 1
