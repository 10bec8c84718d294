"""Keeping an inverter under remote control while a command is in force: heartbeats, re-assertion.

The heartbeat (maps with one, e.g. Sungrow's external-EMS timeout register 13080) must be
written within the OEM's timeout; the bridge writes it every ``keepalive_s``. A write that
carries the heartbeat registers already re-arms the timer, whatever wrote it: a command's
sequence, or the heartbeat a command plan takes along (:meth:`Heartbeat.ride_along`). A
standalone heartbeat is only written when none went out for ``keepalive_s``, so where commands
are frequent, the standalone writes (and their collisions with commands) mostly disappear.

Pure bookkeeping here (:class:`Heartbeat`); the controller does the writes
(:func:`keep_alive`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from edge.bridge.link import CONTROLLED, REASSERT_MIN_S, Heartbeats
from edge.hal.errors import HalError
from edge.hal.points import Command, Telemetry, WritePlan

if TYPE_CHECKING:
    from edge.bridge.site import SiteController

log = logging.getLogger(__name__)


def _since(now: datetime, t: datetime | None) -> float:
    return float("inf") if t is None else (now - t).total_seconds()


class Heartbeat:
    """When the heartbeat registers were last written, by whatever plan wrote them."""

    def __init__(self, period_s: float) -> None:
        if not period_s > 0:
            raise ValueError(f"heartbeat period must be > 0 s, got {period_s}")
        self.period_s = period_s
        self.written_at: datetime | None = None
        self.standalone = 0  # heartbeat-only writes so far
        self.carried = 0  # plans that re-armed the heartbeat on the way

    @staticmethod
    def addresses(plan: WritePlan | None) -> frozenset[int]:
        """Holding-register addresses a heartbeat plan writes (empty: the map has none)."""
        if plan is None:
            return frozenset()
        return frozenset(w.address + i for w in plan.writes for i in range(len(w.values)))

    def wrote(self, plan: WritePlan, heartbeat: WritePlan | None, now: datetime) -> None:
        """``plan`` was written: if it wrote every heartbeat register, the timer is re-armed."""
        need = self.addresses(heartbeat)
        if not need:
            return
        got = {w.address + i for w in plan.writes for i in range(len(w.values))}
        if need <= got:
            self.written_at = now

    def due(self, now: datetime) -> bool:
        """No heartbeat went out for a whole period: write one now."""
        return _since(now, self.written_at) >= self.period_s

    def ride_along(self, plan: WritePlan, heartbeat: WritePlan | None, now: datetime) -> WritePlan:
        """``plan`` with the heartbeat appended when it is half a period old and ``plan`` does
        not write it already: after the command's own writes, so it never delays them."""
        need = self.addresses(heartbeat)
        if heartbeat is None or not need or not plan.writes:
            return plan
        if _since(now, self.written_at) < self.period_s / 2:
            return plan
        got = {w.address + i for w in plan.writes for i in range(len(w.values))}
        if need <= got:
            return plan
        self.carried += 1
        return replace(plan, writes=plan.writes + heartbeat.writes)


def heartbeat_plan(ctl: SiteController) -> WritePlan | None:
    """The device's heartbeat writes, or None (no heartbeat in its map, or no plan context)."""
    if not isinstance(ctl.device, Heartbeats):
        return None
    try:
        return ctl.device.plan_heartbeat()
    except HalError:
        return None


async def keep_alive(ctl: SiteController, now: datetime, tel: Telemetry) -> bool:
    """Keep the inverter under remote control while a command is in force.

    Re-writes the setpoint when telemetry shows the inverter left REMOTE/FORCED (forced timer
    ran out, heartbeat missed) or every ``refresh_s``; else a standalone heartbeat when none
    went out for ``keepalive_s`` (commands carry it too). True when it re-wrote the setpoint.
    """
    if ctl.last_written_kw is None:
        return False
    since_written = _since(now, ctl.written_at)
    left = tel.mode not in CONTROLLED and since_written > ctl.timing.settle_s
    stale = since_written >= ctl.site.refresh_s
    if (left or stale) and _since(now, ctl.reassert_at) >= REASSERT_MIN_S:
        ctl.reassert_at = now
        if left:
            log.warning(
                "site %s: inverter left remote control (%s); setpoint re-written",
                ctl.site.site_id,
                tel.mode,
            )
        if await ctl.write(Command.set_power(ctl.last_written_kw)):
            ctl.reasserts += 1
        return True
    if ctl.heartbeat.due(now):
        plan = heartbeat_plan(ctl)
        if plan is not None:
            ctl.heartbeat.written_at = now  # a failed write is not retried before the period
            if await ctl.apply_plan(plan):
                ctl.heartbeat.standalone += 1
    return False
