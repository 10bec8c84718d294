"""Keeping an inverter under remote control while a command is in force: re-assertion, heartbeats.

At each telemetry poll, while a power is in force (:class:`KeepAlive`, run by the telemetry
loop):

* the setpoint is re-written when telemetry shows the inverter left REMOTE/FORCED (forced
  timer ran out, heartbeat missed) once the OEM's response time has passed, or every
  ``refresh_s`` anyway; at most once per :data:`~edge.bridge.link.REASSERT_MIN_S`
  (:func:`reassert_due`, pure);
* else the device's standalone heartbeat, when one is due (maps with one, e.g. an external-EMS
  timeout register): the device knows when it last went out, also carried along by command
  writes (:meth:`edge.hal.device.Device.plan_keepalive`).
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime

from contract.enums import SiteMode
from edge.bridge.link import CONTROLLED, REASSERT_MIN_S
from edge.bridge.shared import SiteShared
from edge.hal.points import Command, Telemetry

log = logging.getLogger(__name__)


class Reassert(enum.StrEnum):
    LEFT_CONTROL = "LEFT_CONTROL"  # telemetry shows the inverter out of remote control
    REFRESH = "REFRESH"  # the setpoint was last written refresh_s ago


def _since(now: datetime, t: datetime | None) -> float:
    return float("inf") if t is None else (now - t).total_seconds()


def reassert_due(
    mode: SiteMode,
    since_written_s: float,
    since_reassert_s: float,
    *,
    settle_s: float,
    refresh_s: float,
) -> Reassert | None:
    """Why the setpoint in force must be written again now, or None."""
    left = mode not in CONTROLLED and since_written_s > settle_s
    stale = since_written_s >= refresh_s
    if not (left or stale) or since_reassert_s < REASSERT_MIN_S:
        return None
    return Reassert.LEFT_CONTROL if left else Reassert.REFRESH


class KeepAlive:
    """One site's re-assertions and standalone heartbeats (counted)."""

    def __init__(self, shared: SiteShared) -> None:
        self._shared = shared
        self.reassert_at: datetime | None = None
        self.reasserts = 0  # setpoint re-writes that went out
        self.heartbeats = 0  # standalone heartbeat writes that went out

    async def __call__(self, now: datetime, tel: Telemetry) -> bool:
        """Keep the inverter under remote control; True when it re-wrote the setpoint."""
        sh = self._shared
        kw = sh.setpoint.last_written_kw
        if kw is None:
            return False
        why = reassert_due(
            tel.mode,
            _since(now, sh.path.written_at),
            _since(now, self.reassert_at),
            settle_s=sh.timing.settle_s,
            refresh_s=sh.site.refresh_s,
        )
        if why is not None:
            self.reassert_at = now
            if why is Reassert.LEFT_CONTROL:
                log.warning(
                    "site %s: inverter left remote control (%s); setpoint re-written",
                    sh.site.site_id,
                    tel.mode,
                )
            if await sh.path.write(Command.set_power(kw)):
                self.reasserts += 1
            return True
        plan = sh.device.plan_keepalive(now)
        if plan is not None and await sh.path.write_plan(plan, now):
            self.heartbeats += 1
        return False
