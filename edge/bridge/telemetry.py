"""A site's telemetry loop: poll, faults, status, rediscovery, publish, expiry enforcement.

Every interval (:meth:`TelemetryLoop.run`, the first poll ``phase_s`` late so a bridge's sites
spread over the interval) one :meth:`TelemetryLoop.tick`:

* identifies the device once, reads the telemetry due at this poll (tiered, in the HAL) and the
  fault words every ``fault_interval_s``; a failure is counted on the link, an OFFLINE device
  with a known serial is looked for elsewhere (rate limited), and DeviceStatus goes out;
* forgets the held registers when the inverter left remote control (they are not ours then);
* publishes SiteFault on a change (on disk at once) and SiteTelemetry every poll;
* enforces what is in force: what expired is dropped (an arm, an order, a setpoint: the
  others stay); nothing left in force and nothing queued to succeed it: back to safe mode;
  else the keep-alive (:mod:`edge.bridge.keepalive`), else the target (baseline following the
  home's load and PV, plus the armed responses and orders) at the poll's rate;
* judges whether the battery delivers the target it was written (:mod:`edge.bridge.ceiling`:
  an inverter that clamps or overrides shows a ceiling beyond its baseline);
* publishes with every sample the baseline, what is armed and ordered per product, and the
  headroom left beyond all of it (:func:`edge.bridge.headroom.headroom`), both within a
  standing ceiling (what the site can actually deliver); logs when a product's full
  activation no longer fits (:func:`edge.bridge.headroom.shortfalls`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from edge.bridge.bounds import Bounds
from edge.bridge.ceiling import DETECT_SETTLES, held_within
from edge.bridge.diskwriter import DiskWriter, log_failure
from edge.bridge.events import (
    FAULT,
    STATUS,
    TELEMETRY,
    LinkStatus,
    TelemetryContext,
    fault_record,
    status_record,
    telemetry_record,
)
from edge.bridge.headroom import headroom, shortfalls
from edge.bridge.keepalive import KeepAlive
from edge.bridge.link import CONTROLLED
from edge.bridge.model import FREQUENCY_PRODUCTS, ORDER_PRODUCTS, Cause
from edge.bridge.override import Observation, likely_cause
from edge.bridge.scheduler import Action, decide
from edge.bridge.shared import SiteShared
from edge.bridge.sink import EventSink
from edge.hal.capabilities import Rediscover
from edge.hal.errors import HalError
from edge.hal.points import Fault, Telemetry

log = logging.getLogger(__name__)


class ReserveDuty(Protocol):
    """What the poll asks of the site's reserve loop (:class:`edge.bridge.reserve.ReserveLoop`)."""

    async def enforce(
        self, now: datetime, frequency_hz: float | None, within: Bounds | None = None
    ) -> None: ...


def _since(now: datetime, t: datetime | None) -> float:
    return float("inf") if t is None else (now - t).total_seconds()


class TelemetryLoop:
    """One site's polls and what they enforce."""

    def __init__(
        self,
        shared: SiteShared,
        reserve: ReserveDuty,
        queued: Callable[[], int],
        *,
        writer: DiskWriter,
        sink: EventSink,
        interval_s: float = 1.0,
        status_interval_s: float = 30.0,
        rediscover: Rediscover | None = None,
    ) -> None:
        self._shared = shared
        self._reserve = reserve
        self._queued = queued  # commands waiting to be applied (a successor to an expired one)
        self._writer = writer
        self._sink = sink
        self.interval_s = interval_s
        self.status_interval_s = status_interval_s
        self._rediscover = rediscover
        self.keepalive = KeepAlive(shared)
        self.faults: list[Fault] = []
        self._faults_at: datetime | None = None
        self._short: frozenset[str] = frozenset()  # products whose full activation is short

    async def run(self, phase_s: float = 0.0) -> None:
        """Poll every interval, the first poll ``phase_s`` late (staggers a bridge's sites)."""
        loop = asyncio.get_running_loop()
        if phase_s > 0:
            await asyncio.sleep(phase_s)
        next_at = loop.time()
        while True:
            try:
                await self.tick()
            except Exception:  # e.g. OutboxFullError: keep polling and enforcing
                log.exception("site %s: telemetry tick", self._shared.site.site_id)
            next_at += self.interval_s
            delay = next_at - loop.time()
            if delay < 0:
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)

    async def tick(self) -> None:
        """One poll: read, publish, enforce expiry, run the droop.

        The sample is stamped the instant its registers were read (the clock when the
        read's last reply came in: the newest value in it is from then, none is younger),
        and it reports what was in force then: the expiry due by that instant is applied
        first, and what the poll then writes (the target, a re-assertion, a return to safe
        mode) shows in the next sample. A command applied while the poll runs is never in
        a sample stamped before it.
        """
        sh = self._shared
        now = sh.clock()
        t0 = asyncio.get_running_loop().time()
        try:
            if sh.identity is None:
                sh.identity = await sh.device.identify()
            tel = await sh.device.read_due_telemetry()
            now = sh.clock()  # the registers were read: the sample's instant
            faults = self.faults
            if _since(now, self._faults_at) >= sh.site.fault_interval_s:
                faults, self._faults_at = await sh.device.read_faults(), now
        except HalError as exc:
            sh.link.failed(exc)
            await self._maybe_rediscover(now)
            self._publish_status(now)
            return
        sh.link.ok((asyncio.get_running_loop().time() - t0) * 1000.0)
        sh.telemetry = tel
        if tel.mode not in CONTROLLED:
            sh.device.forget_held()  # out of remote control: its registers are not ours any more
        limits = sh.limits = sh.live_limits()
        if {f.code for f in faults} != {f.code for f in self.faults}:
            self._sink.emit(FAULT, fault_record(sh.site.site_id, faults, self.faults, now))
            self._writer.sync(bulk=False).add_done_callback(log_failure)  # critical: on disk now
            self.faults = list(faults)
        within = sh.bounds(limits)
        self._expire(now)
        # what was in force at the sample's instant, before this poll's own writes
        in_force, written_kw = sh.setpoint.in_force, sh.setpoint.last_written_kw
        active = sh.setpoint.state.active
        await self._enforce(now, tel, within)
        base_kw = sh.baseline(now, in_force, within).kw
        reported = self._watch_delivery(now, tel, written_kw, base_kw, within)
        up, down = headroom(reported, base_kw, in_force)
        self._report_shortfalls(within, base_kw)
        armed = {p: in_force.armed_kw(p) for p in FREQUENCY_PRODUCTS}
        orders = {p: in_force.order_kw(p) for p in ORDER_PRODUCTS}
        if reported != within:  # a ceiling stands: each product holds what still fits
            held_armed, held_orders = held_within(in_force, shortfalls(reported, base_kw, in_force))
            armed |= held_armed
            orders |= held_orders
        ctx = TelemetryContext(
            headroom_up_kw=up,
            headroom_down_kw=down,
            max_discharge_kw=limits.max_discharge_kw,
            max_charge_kw=limits.max_charge_kw,
            setpoint_kw=written_kw,
            active_command_id=active.command_id if active else None,
            reserve_armed=in_force.first_armed(),
            faulted=bool(self.faults),
            baseline_kw=base_kw,
            armed_kw=armed,
            order_kw=orders,
        )
        self._sink.emit(TELEMETRY, telemetry_record(sh.site.site_id, sh.identity, tel, ctx, now))
        self._publish_status(now)

    def _watch_delivery(
        self,
        now: datetime,
        tel: Telemetry,
        written_kw: float | None,
        baseline_kw: float,
        within: Bounds,
    ) -> Bounds:
        """Judge whether the battery delivers the target (:mod:`edge.bridge.ceiling`); the
        bounds the site's room is reported with (``within`` narrowed by a standing ceiling)."""
        sh = self._shared
        measured, timing, site = tel.battery_power_kw, sh.timing, sh.site
        cause = Cause.UNKNOWN
        if written_kw is not None and measured is not None:
            obs = Observation(measured, tel.soc_pct, tel.mode, timing.settle_s, None, self.faults)
            cause = likely_cause(
                obs, written_kw, site.soc_reserve_min_pct, site.soc_reserve_max_pct
            )
        changes = sh.watch.sample(
            now,
            written_kw,
            baseline_kw,
            measured,
            tolerance_kw=timing.tolerance(written_kw or 0.0),
            window_s=DETECT_SETTLES * timing.settle_s,
            cause=cause,
        )
        for line in changes:
            log.warning("site %s: %s", site.site_id, line)
        return sh.watch.narrow(within, baseline_kw, now)

    def _report_shortfalls(self, within: Bounds, baseline_kw: float) -> None:
        """A warning when the products whose full activation no longer fits change."""
        sh = self._shared
        short = shortfalls(within, baseline_kw, sh.setpoint.in_force)
        names = frozenset(short)
        if names == self._short:
            return
        self._short = names
        if short:
            log.warning(
                "site %s: headroom short (baseline %.3f kW, bounds %.3f..%.3f kW): %s",
                sh.site.site_id,
                baseline_kw,
                within.min_kw,
                within.max_kw,
                ", ".join(f"{p} {kw:.3f} kW" for p, kw in short.items()),
            )
        else:
            log.info("site %s: every product's full activation fits again", sh.site.site_id)

    def _expire(self, now: datetime) -> None:
        """Drop what expired by ``now``."""
        sh = self._shared
        for gone in sh.setpoint.expire(now):
            log.info("site %s: %s %s expired", sh.site.site_id, gone.kind, gone.command_id)

    async def _enforce(self, now: datetime, tel: Telemetry, within: Bounds) -> None:
        """Back to safe mode when nothing is left in force (expiry: :meth:`_expire`), the
        keep-alive, the target."""
        sh = self._shared
        if decide(sh.setpoint.state, now, self._queued()) is Action.REVERT_TO_SAFE_MODE:
            log.info("site %s: nothing in force, back to safe mode", sh.site.site_id)
            await sh.path.write(sh.safe_command())
            sh.setpoint.to_safe_mode()
            return
        if sh.setpoint.state.in_safe_mode:
            return
        if await self.keepalive(now, tel):
            return
        await self._reserve.enforce(now, tel.frequency_hz, within)

    async def _maybe_rediscover(self, now: datetime) -> None:
        """OFFLINE with a known serial: look for the device elsewhere (rate limited)."""
        sh = self._shared
        if self._rediscover is None or sh.identity is None or sh.link_state() != "OFFLINE":
            return
        serial = sh.identity.serial
        every = sh.site.rediscover_every_s
        found = await sh.link.rediscover_if_due(self._rediscover, serial, now, every)
        if found is not None:
            log.info("site %s: %s found at %s:%s", sh.site.site_id, serial, *found)

    def _publish_status(self, now: datetime) -> None:
        sh = self._shared
        link, ident = sh.link, sh.identity
        st = LinkStatus(
            state=sh.link_state(),
            host=link.host,
            port=link.port,
            unit_id=link.unit_id,
            serial=ident.serial if ident else None,
            error_count=link.errors,
            last_error=link.last_error,
            rtt_ms=link.rtt_ms,
            outbox_depth=self._sink.outbox.depth,
            outbox_dropped=self._sink.outbox.dropped,
        )
        if link.status_due(st, now, self.status_interval_s):
            self._sink.emit(STATUS, status_record(sh.site.site_id, st, now))
