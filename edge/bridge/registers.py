"""What a device's holding registers hold, as the bridge last wrote them: skip writes that would
change nothing (e.g. the OEM mode register on every power update).

A value is trusted only while nothing contradicts it and for at most ``max_age_s`` after it
was written; the controller forgets everything when a write fails, when telemetry shows the
inverter left remote control (a firmware timer or another master changed its registers) and
when the read-back after a command does not match. Keep-alive writes (heartbeats, periodic
re-assertions, safe mode, stop) never go through here: they are meant to be written.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edge.hal.planner import drop_held
from edge.hal.points import WritePlan


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
