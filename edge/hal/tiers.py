"""Tiered telemetry polling, pure: which points a poll reads and the latest value of every one.

Each poll reads only the points due at that poll (:func:`edge.hal.planner.poll_tiers`: power,
frequency and mode every poll, SoC, BMS limits and capacity every N polls), keeps the latest
value of every point and decodes a full :class:`Telemetry` from them: telemetry still goes out
every interval, slow points carrying their latest reading. :meth:`TieredPolling.ages_s` tells
how old each canonical point's value is (at most ``period x interval`` while the link is up: a
failed poll changes nothing). Fewer reads per poll keep the Modbus link free for writes.

No I/O here: :class:`edge.hal.device.Device` reads the registers
(:meth:`~edge.hal.device.Device.read_due_telemetry`, ``read_frequency``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from edge.hal.decode import Value, canonical, decode_telemetry
from edge.hal.planner import POLL_EVERY, due_points, poll_tiers
from edge.hal.points import CanonicalPoint, Telemetry
from edge.hal.registermap import RegisterMap, Source


def source_points(src: Source) -> list[str]:
    """The register points a canonical value is computed from."""
    return [t.point for t in src.terms] + ([src.times] if src.times else [])


class TieredPolling:
    """One device's polls: the due tier each poll, the rest from the latest values."""

    def __init__(
        self,
        every: Mapping[CanonicalPoint, int] = POLL_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self.clock = clock
        self.polls = 0
        self._rmap: RegisterMap | None = None
        self._tiers: dict[str, int] = {}
        self._values: dict[str, Value] = {}
        self._read_at: dict[str, float] = {}

    def _tiers_for(self, rmap: RegisterMap) -> dict[str, int]:
        if rmap is not self._rmap:  # first use, or identify() switched to a firmware variant
            self._rmap, self._tiers = rmap, poll_tiers(rmap, self.every)
            self._values.clear()
            self._read_at.clear()
            self.polls = 0
        return self._tiers

    def due(self, rmap: RegisterMap) -> list[str]:
        """The points this poll reads: those due at this poll number, and any never read."""
        tiers = self._tiers_for(rmap)
        due = [n for n in tiers if n not in self._values]
        due += [n for n in due_points(tiers, self.polls) if n in self._values]
        return due

    def polled(self, rmap: RegisterMap, values: Mapping[str, Value]) -> Telemetry:
        """The due points were read: the full sample (the poll counter moves only here)."""
        self._tiers_for(rmap)
        self._keep(values)
        self.polls += 1
        return decode_telemetry(rmap, self._values)

    def _keep(self, values: Mapping[str, Value]) -> None:
        now = self.clock()
        self._values.update(values)
        self._read_at.update(dict.fromkeys(values, now))

    @staticmethod
    def frequency_points(rmap: RegisterMap) -> list[str]:
        """The register points of the grid frequency (empty: the map has none)."""
        src = rmap.telemetry.get(CanonicalPoint.FREQUENCY_HZ)
        return [] if src is None else source_points(src)

    def frequency(self, rmap: RegisterMap, values: Mapping[str, Value]) -> float | None:
        """The frequency from a short read of :meth:`frequency_points` (kept as the latest
        values of those points while the map is the one polled)."""
        src = rmap.telemetry.get(CanonicalPoint.FREQUENCY_HZ)
        if src is None:
            return None
        if rmap is self._rmap:
            self._keep(values)
        return canonical(rmap, src, values)

    def ages_s(self) -> dict[CanonicalPoint, float]:
        """Age of each canonical point's value: that of its oldest register point."""
        if self._rmap is None:
            return {}
        now = self.clock()
        out: dict[CanonicalPoint, float] = {}
        for cp, src in self._rmap.telemetry.items():
            times = [self._read_at.get(n) for n in source_points(src)]
            if all(t is not None for t in times):
                out[cp] = now - min(t for t in times if t is not None)
        return out
