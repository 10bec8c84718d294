"""A site's reserve loop: the power to hold (baseline + responses + orders) and its writes.

The power to hold is computed in one place, :meth:`ReserveLoop.target`: the site's baseline
(:meth:`edge.bridge.shared.SiteShared.baseline`: its own mode, its schedule, or a SET_POWER's
setpoint) plus every armed product's response at the measured frequency plus every order's
change, bounded (:func:`edge.bridge.stack.compose`). What is in force lives in
:class:`edge.bridge.shared.Setpoint`.

* At every telemetry poll (:meth:`ReserveLoop.enforce`, run by the telemetry loop) while
  something is in force: the baseline follows the home's load and PV, so the target is
  written again when it moved by ``min_step_kw``. This keeps running from the site's own
  readings when the cloud link is lost, until what is in force expires.
* FFR and FCR-D need a response within seconds; a 1 s telemetry poll alone adds up to a
  second before the bridge even sees a frequency step. While a product is armed,
  :meth:`ReserveLoop.run` reads only the frequency every ``SiteConfig.reserve_poll_s``
  (default 0.2 s) and writes the target when it moved by ``min_step_kw`` and the map's
  write gap has passed (:func:`edge.bridge.droop.fast_write_due`). It starts when an arm is
  in force (:meth:`ReserveLoop.in_force`) and sleeps when nothing is armed.

The write path's lock serialises all writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime

from contract.enums import Product
from edge.bridge.bounds import Bounds
from edge.bridge.droop import fast_write_due, needs_write
from edge.bridge.shared import SiteShared
from edge.bridge.stack import Arm, InForce, Target, compose
from edge.hal.errors import HalError
from edge.hal.points import Command

log = logging.getLogger(__name__)


class ReserveLoop:
    """One site's target power and the writes that keep the inverter at it."""

    def __init__(self, shared: SiteShared) -> None:
        self._shared = shared
        self._wake = asyncio.Event()  # set once an arm is in force
        self.droop_writes = 0  # target writes between commands (fast loop and polls)

    @property
    def armed(self) -> Mapping[Product, Arm]:
        """The armed products (by product) in force now."""
        return self._shared.setpoint.in_force.arms

    def target(
        self,
        frequency_hz: float | None,
        now: datetime,
        in_force: InForce | None = None,
        within: Bounds | None = None,
    ) -> Target:
        """The power to hold at ``frequency_hz`` with ``in_force`` (default: what is in force):
        baseline + armed responses + order changes, bounded (by ``within``, default: the
        site's bounds now)."""
        sh = self._shared
        held = (sh.setpoint.in_force if in_force is None else in_force).expire(now)
        within = sh.bounds() if within is None else within
        base = sh.baseline(now, held, within)
        return compose(base.kw, held, frequency_hz, within)

    def in_force(self) -> None:
        """A command's writes went out: if a product is armed, the fast loop runs."""
        if self.armed:
            self._wake.set()

    # ------------------------------------------------------------ responding
    async def enforce(
        self, now: datetime, frequency_hz: float | None, within: Bounds | None = None
    ) -> None:
        """At the telemetry poll: write the target (bounded by ``within``, default: the
        site's bounds now) when it moved by ``min_step_kw``."""
        sh = self._shared
        if sh.setpoint.state.in_safe_mode or sh.setpoint.in_force.empty or sh.limits is None:
            return
        target = self.target(frequency_hz, now, within=within)
        if needs_write(sh.setpoint.last_written_kw, target.total_kw, sh.site.min_step_kw):
            await self._write(target.total_kw)

    async def run(self) -> None:
        """Forever: wait until a product is armed, then sample and respond until none is."""
        loop = asyncio.get_running_loop()
        every = self._shared.site.reserve_poll_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            next_at = loop.time()
            while self.armed:
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
        if not self.armed or sh.limits is None or sh.setpoint.state.in_safe_mode:
            return
        target = self.target(freq, sh.clock())
        since = mono - sh.path.written_mono
        last = sh.setpoint.last_written_kw
        if fast_write_due(last, target.total_kw, sh.site.min_step_kw, since, sh.device.write_gap_s):
            await self._write(target.total_kw)

    async def _write(self, target_kw: float) -> None:
        """Write the target (only what changes) and remember it."""
        if await self._shared.path.write(Command.set_power(target_kw), trim=True):
            self._shared.setpoint.wrote(target_kw, self._shared.path.written_at)
            self.droop_writes += 1
