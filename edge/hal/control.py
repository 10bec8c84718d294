"""What a device's holding registers hold as we wrote them, and when its heartbeat last went out.

Pure bookkeeping behind :class:`edge.hal.device.Device` (no I/O): the bridge asks the device for
"this command's writes, leaving out what it already holds and carrying the heartbeat" and
"the heartbeat, if one is due"; it never sees a register address.

* :class:`HeldRegisters`: skip writes that would change nothing (e.g. the OEM mode register on
  every power update). A value is trusted only while nothing contradicts it and for at most
  ``hold_s`` after it was written; everything is forgotten when a write fails, when telemetry
  shows the inverter left remote control (a firmware timer or another master changed its
  registers) and when the read-back after a command does not match. Keep-alive writes
  (heartbeats, periodic re-assertions, safe mode, stop) never go through here: they are meant
  to be written.
* :class:`Heartbeat`: maps with one (e.g. Sungrow's external-EMS timeout register) must see it
  written within the OEM's timeout; a standalone one is due every ``heartbeat_s``. A write that
  carries the heartbeat registers re-arms the timer, whatever wrote it: a command's sequence,
  or the heartbeat a command plan takes along (:meth:`Heartbeat.ride_along`). Where commands are
  frequent, the standalone writes (and their collisions with commands) mostly disappear.
* :class:`WriteBook`: both, for one device, as :class:`~edge.hal.device.Device` uses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from edge.hal.planner import drop_held
from edge.hal.points import WritePlan

# The defaults of the bridge's site config (edge.bridge.config.SiteConfig.skip_held_writes_s and
# keepalive_s take them from here, so they are stated once). A written register is trusted for
# 30 s, then the next update writes it again; the standalone heartbeat every 5 s stays
# well inside the 20 s timeout the plans write (edge.hal.planner.PlanContext.heartbeat_s).
DEFAULT_HOLD_S = 30.0
DEFAULT_HEARTBEAT_S = 5.0


@dataclass(frozen=True)
class ControlPolicy:
    """How a device economises its writes: trust held registers ``hold_s`` (0 = never skip a
    write), write a standalone heartbeat every ``heartbeat_s`` (maps that have one)."""

    hold_s: float = DEFAULT_HOLD_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S


def _since(now: datetime, t: datetime | None) -> float:
    return float("inf") if t is None else (now - t).total_seconds()


def _registers(plan: WritePlan) -> set[int]:
    return {w.address + i for w in plan.writes for i in range(len(w.values))}


class HeldRegisters:
    """Address -> (value, when written) for one device's holding registers."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0, got {max_age_s}")
        self.max_age_s = max_age_s
        self.clock = clock
        self._held: dict[int, tuple[int, float]] = {}
        self.skipped = 0  # writes left out so far

    def fresh(self) -> dict[int, int]:
        """The values still trusted now (younger than ``max_age_s``)."""
        now = self.clock()
        return {a: v for a, (v, t) in self._held.items() if now - t < self.max_age_s}

    def trim(self, plan: WritePlan) -> WritePlan:
        """The plan without writes the device already holds (nothing trimmed if disabled)."""
        if self.max_age_s == 0 or not self._held:
            return plan
        trimmed = drop_held(plan, self.fresh())
        self.skipped += len(plan.writes) - len(trimmed.writes)
        return trimmed

    def wrote(self, plan: WritePlan) -> None:
        """Every write of ``plan`` was acknowledged by the device."""
        now = self.clock()
        for w in plan.writes:
            for i, v in enumerate(w.values):
                self._held[w.address + i] = (v, now)

    def forget(self) -> None:
        self._held.clear()


class Heartbeat:
    """When the heartbeat registers were last written, by whatever plan wrote them."""

    def __init__(self, period_s: float) -> None:
        if not period_s > 0:
            raise ValueError(f"heartbeat period must be > 0 s, got {period_s}")
        self.period_s = period_s
        self.written_at: datetime | None = None
        self.carried = 0  # plans that re-armed the heartbeat on the way

    @staticmethod
    def addresses(plan: WritePlan | None) -> frozenset[int]:
        """Holding-register addresses a heartbeat plan writes (empty: the map has none)."""
        if plan is None:
            return frozenset()
        return frozenset(_registers(plan))

    def wrote(self, plan: WritePlan, heartbeat: WritePlan | None, now: datetime) -> None:
        """``plan`` was written: if it wrote every heartbeat register, the timer is re-armed."""
        need = self.addresses(heartbeat)
        if need and need <= _registers(plan):
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
        if need <= _registers(plan):
            return plan
        self.carried += 1
        return replace(plan, writes=plan.writes + heartbeat.writes)


class WriteBook:
    """One device's held registers and heartbeat timer, updated by every plan written."""

    def __init__(self, policy: ControlPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.held = HeldRegisters(policy.hold_s, clock)
        self.heartbeat = Heartbeat(policy.heartbeat_s)

    def update(
        self, plan: WritePlan, heartbeat: WritePlan | None, now: datetime, *, carry: bool
    ) -> WritePlan:
        """A power update's plan: without what the device holds; ``carry``: with the heartbeat
        taken along when it is getting old (after the update's own writes)."""
        plan = self.held.trim(plan)
        return self.heartbeat.ride_along(plan, heartbeat, now) if carry else plan

    def keepalive(self, heartbeat: WritePlan | None, now: datetime) -> WritePlan | None:
        """The standalone heartbeat when one is due (else None). It counts as sent from now on:
        a failed write is not retried before the next period."""
        if heartbeat is None or not self.heartbeat.due(now):
            return None
        self.heartbeat.written_at = now
        return heartbeat

    def wrote(self, plan: WritePlan, heartbeat: WritePlan | None, now: datetime) -> None:
        """Every write of ``plan`` was acknowledged."""
        self.held.wrote(plan)
        self.heartbeat.wrote(plan, heartbeat, now)

    def failed(self) -> None:
        """A write failed (or the registers may not hold our values any more): trust nothing."""
        self.held.forget()
