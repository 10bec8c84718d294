"""After a command's registers were written: read back, measure, classify, report.

Runs in the background per written command (the site goes on polling and applying): waits the
OEM's response time, reads the setpoint registers back, measures battery power and mode, and
gives the command's outcome, APPLIED, CLAMPED or OVERRIDDEN, with the measured values and the
likely cause (:func:`edge.bridge.override.classify`). The command pipeline reports it.

Between commands the reserve loop re-writes the target as the home's baseline and the
frequency move. A write after the command's own restarts the wait (the response time from the
latest write, at most :data:`MAX_WAIT_SETTLES` response times in all) and the read-back judges
the target in force then, as a step from the target before it (what the battery followed when
it moved; not the battery power before the command) over the time since it moved; a target
that keeps moving that long is reported, not judged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from contract.enums import CommandStatus
from edge.bridge.events import Outcome
from edge.bridge.idempotency import Tracking
from edge.bridge.model import BridgeCommand, Cause
from edge.bridge.override import Observation, Verdict, classify
from edge.bridge.safety import Accepted
from edge.bridge.shared import SiteShared
from edge.hal.errors import HalError
from edge.hal.points import Command

log = logging.getLogger(__name__)

#: The longest a read-back waits for the target to hold still, in OEM response times.
MAX_WAIT_SETTLES = 4.0


@dataclass(frozen=True)
class Written:
    """A command whose registers were written; observed after the response time."""

    cmd: BridgeCommand
    decision: Accepted
    hal_cmd: Command
    start_kw: float
    writes: int
    acked: datetime
    tracking: Tracking | None
    seq: int  # the pipeline's count of applied commands, this one included
    acked_mono: float = float("-inf")  # loop time of the same acknowledgement


@dataclass(frozen=True)
class CommandTrace:
    """Stage instants of one applied command, on the ``time.monotonic()`` clock."""

    site_id: str
    command_id: str
    received: float  # handed over by the consumer
    claimed: float  # its claim durable (at most once)
    sent: float  # first write handed to the transport
    acked: float  # every write of its plan acknowledged


async def observe(
    shared: SiteShared, w: Written, latency_ms: float, applied: Callable[[], int]
) -> Outcome:
    """Read back and measure after the response time; the command's outcome.

    ``applied``: how many commands the pipeline has applied by now (a later one supersedes
    this one's measurement).
    """
    cmd, decision = w.cmd, w.decision
    written = decision.written_kw  # None: handed back to the site's own mode
    base = Outcome(
        cmd.command_id,
        cmd.site_id,
        CommandStatus.APPLIED,
        requested_kw=decision.requested_kw,
        written_kw=written,
        cause=decision.clamp_cause,
        reason=decision.reason,
        register_writes=w.writes,
        latency_ms=latency_ms,
    )
    timing = shared.timing
    try:
        settled = await _settled(shared, w.acked_mono, timing.settle_s, handed_back=written is None)
        readback = await shared.device.read_setpoint_readback()
        tel = await shared.device.read_due_telemetry()
        faults = await shared.device.read_faults()
    except HalError as exc:
        shared.link.failed(exc)
        return replace(base, reason=_also(decision.reason, f"written; read-back failed: {exc}"))
    shared.telemetry = tel
    measured = tel.battery_power_kw
    elapsed = (shared.clock() - w.acked).total_seconds()
    if written is None or measured is None:
        status = CommandStatus.CLAMPED if decision.clamped else CommandStatus.APPLIED
        return replace(
            base,
            status=status,
            measured_kw=measured,
            measured_soc_pct=tel.soc_pct,
            reason=_also(
                decision.reason,
                "handed back to the OEM's own mode"
                if written is None
                else "battery power not measured",
            ),
        )
    holding = shared.setpoint.last_written_kw
    if w.seq != applied() or holding is None:
        return replace(
            base,
            status=CommandStatus.CLAMPED if decision.clamped else CommandStatus.APPLIED,
            measured_kw=measured,
            measured_soc_pct=tel.soc_pct,
            reason=_also(decision.reason, "written; superseded before the response time passed"),
        )
    sp = shared.setpoint
    since = sp.changed_at is not None and sp.changed_at > w.acked  # the target moved after it
    if not settled:
        return replace(
            base,
            status=CommandStatus.CLAMPED if decision.clamped else CommandStatus.APPLIED,
            measured_kw=measured,
            measured_soc_pct=tel.soc_pct,
            reason=_also(
                decision.reason,
                f"written; the target kept moving (baseline, frequency) for "
                f"{MAX_WAIT_SETTLES * timing.settle_s:.1f} s, now {holding:.3f} kW: not judged",
            ),
        )
    start = w.start_kw
    if since:  # judge the target in force now, from its own write and the target before it
        assert sp.changed_at is not None  # noqa: S101  # since says so
        elapsed = (shared.clock() - sp.changed_at).total_seconds()
        written = holding
        start = w.start_kw if sp.before_last_kw is None else sp.before_last_kw
    site = shared.site
    verdict = classify(
        written,
        start,
        Observation(measured, tel.soc_pct, tel.mode, elapsed, readback, tuple(faults)),
        timing=timing,
        soc_min_pct=site.soc_reserve_min_pct,
        soc_max_pct=site.soc_reserve_max_pct,
        gate_cause=decision.clamp_cause,
    )
    if verdict.status is not CommandStatus.APPLIED:
        shared.device.forget_held()  # clamped or overridden: the registers may not hold ours
    moved = f"target re-written to {holding:.3f} kW since (baseline, frequency); " if since else ""
    return replace(
        base,
        status=verdict.status,
        measured_kw=measured,
        measured_soc_pct=tel.soc_pct,
        cause=verdict.cause,
        reason=_also(decision.reason, moved + verdict.reason + _ceiling(shared, verdict, written)),
    )


def _ceiling(shared: SiteShared, verdict: Verdict, written_kw: float) -> str:
    """An inverter that does not follow: what it delivers beyond the baseline becomes the
    site's ceiling (:mod:`edge.bridge.ceiling`); the words for the result's reason."""
    if verdict.follows:
        return ""
    base = shared.last_baseline_kw
    ceiling = shared.watch.observed(
        shared.clock(),
        written_kw,
        base,
        verdict.measured_kw,
        tolerance_kw=shared.timing.tolerance(written_kw),
        cause=verdict.cause or Cause.UNKNOWN,
    )
    if ceiling is None:
        return ""
    words = (
        f"delivers {ceiling.kw:.3f} kW of the {ceiling.asked_kw:.3f} kW asked beyond its "
        f"baseline {base:.3f} kW: headroom reported within that until it follows again"
    )
    log.warning("site %s: %s %s", shared.site.site_id, verdict.status, words)
    return "; " + words


async def _settled(
    shared: SiteShared, acked_mono: float, settle_s: float, handed_back: bool
) -> bool:
    """Wait the response time after the command's write and after any later target write (at
    most :data:`MAX_WAIT_SETTLES` response times in all); True once the last write has had its
    response time."""
    await asyncio.sleep(settle_s)
    if handed_back:
        return True
    loop = asyncio.get_running_loop()
    deadline = acked_mono + MAX_WAIT_SETTLES * settle_s
    while (since := loop.time() - shared.path.written_mono) < settle_s:
        if loop.time() + settle_s - since > deadline:
            return False
        await asyncio.sleep(settle_s - since)
    return True


def _also(first: str | None, then: str) -> str:
    """The command's own clamp reason (if any), then what the read-back found."""
    return then if first is None else f"{first}; {then}"
