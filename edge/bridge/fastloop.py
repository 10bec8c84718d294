"""The armed reserve's fast loop: the grid frequency alone, faster than the telemetry poll.

FFR and FCR-D need a response within seconds; a 1 s telemetry poll alone adds up to a second
before the bridge even sees a frequency step. While a reserve is armed this loop reads only the
frequency point every ``SiteConfig.reserve_poll_s`` (default 0.2 s) and writes the droop power
when it moved by ``min_step_kw`` (the deadband) and the map's write gap has passed
(:func:`edge.bridge.droop.fast_write_due`). It starts when an ARM_RESERVE command is in force and
stops when the reserve disarms (expiry, STOP, SAFE_MODE). The telemetry poll keeps enforcing
the droop too, at its own rate; one lock serialises their writes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from edge.bridge.droop import fast_write_due
from edge.hal.errors import HalError

if TYPE_CHECKING:
    from edge.bridge.site import SiteController

log = logging.getLogger(__name__)


async def run_reserve(ctl: SiteController) -> None:
    """Forever: wait until a reserve is armed, then sample and respond until it disarms."""
    loop = asyncio.get_running_loop()
    while True:
        await ctl.armed_event.wait()
        ctl.armed_event.clear()
        next_at = loop.time()
        while ctl.reserve.armed is not None:
            try:
                await fast_step(ctl, loop.time())
            except Exception:  # a bug must not stop the reserve: log, next sample
                log.exception("site %s: reserve fast loop", ctl.site.site_id)
            next_at += ctl.site.reserve_poll_s
            delay = next_at - loop.time()
            if delay < 0:
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)


async def fast_step(ctl: SiteController, mono: float) -> None:
    """One sample: read the frequency, write the droop target if it is due."""
    try:
        freq = await ctl.reader.read_frequency()
    except HalError as exc:
        ctl.link.failed(exc)
        return
    if ctl.reserve.armed is None or ctl.limits is None or ctl.state.in_safe_mode:
        return
    target = ctl.reserve.target(ctl.base_kw, freq, ctl.clock(), ctl.limits)
    dev = ctl.reader.points
    gap = dev.rmap.connection.write_gap_s if dev is not None else 0.0
    due = fast_write_due(
        ctl.last_written_kw, target.total_kw, ctl.site.min_step_kw, mono - ctl.written_mono, gap
    )
    if due:
        await ctl.droop_write(target.total_kw)
