"""Tiered telemetry polling and the fast frequency read, over a map-driven HAL device.

Each poll reads only the points due at that poll (:func:`edge.hal.planner.poll_tiers`: power,
frequency and mode every poll, SoC, BMS limits and capacity every N polls), keeps the latest
value of every point and decodes a full :class:`Telemetry` from them: telemetry still goes out
every interval, slow points carrying their latest reading. :meth:`TieredReader.ages_s` tells how
old each canonical point's value is (at most ``period x interval`` while the link is up: a
failed poll publishes nothing). Fewer reads per poll keep the Modbus link free for writes.

A device that is not map-driven (no ``rmap`` / ``read_points``) is read whole every poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

from edge.hal.blocks import Block
from edge.hal.capabilities import BatteryDevice
from edge.hal.decode import Value, canonical, decode_telemetry, values_from_bank
from edge.hal.planner import POLL_EVERY, due_points, poll_tiers
from edge.hal.points import CanonicalPoint, Telemetry
from edge.hal.registermap import RegisterMap


@runtime_checkable
class PointDevice(Protocol):
    """A HAL device driven by a register map (edge.hal.device.Device)."""

    rmap: RegisterMap
    last_telemetry: Telemetry | None

    async def read_points(self, names: Iterable[str]) -> dict[str, Value]: ...


class TieredReader:
    """One site's telemetry reads: the due tier each poll, the rest from the latest values."""

    def __init__(
        self,
        device: BatteryDevice,
        every: Mapping[CanonicalPoint, int] = POLL_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.points: PointDevice | None = device if isinstance(device, PointDevice) else None
        self.every = every
        self.clock = clock
        self.polls = 0
        self._blocks: dict[tuple[int, tuple[str, ...]], list[Block]] = {}  # per map and point set
        self._rmap: RegisterMap | None = None
        self._tiers: dict[str, int] = {}
        self._values: dict[str, Value] = {}
        self._read_at: dict[str, float] = {}

    def _tiers_for(self, rmap: RegisterMap) -> dict[str, int]:
        if rmap is not self._rmap:  # first use, or identify() switched to a firmware variant
            self._rmap, self._tiers = rmap, poll_tiers(rmap, self.every)
            self._values.clear()
            self._read_at.clear()
            self._blocks.clear()
            self.polls = 0
        return self._tiers

    async def _read_points(self, dev: PointDevice, names: list[str]) -> dict[str, Value]:
        """Device.read_points with the block plan of each point set computed once."""
        transport = getattr(dev, "transport", None)
        blocks_for = getattr(dev, "blocks_for", None)
        if transport is None or blocks_for is None:
            return await dev.read_points(names)
        key = (id(dev.rmap), tuple(names))
        blocks = self._blocks.get(key)
        if blocks is None:
            blocks = self._blocks[key] = blocks_for(names)
        bank: dict[tuple[str, int], int] = {}
        for block in blocks:
            regs = await transport.read(block.table, block.address, block.count)
            for i, reg in enumerate(regs):
                bank[(block.table, block.address + i)] = reg
        return values_from_bank(dev.rmap, names, bank)

    async def read(self) -> Telemetry:
        """One poll (HalError propagates; the poll counter only moves on success)."""
        dev = self.points
        if dev is None:
            return await self.device.read_telemetry()
        rmap = dev.rmap
        tiers = self._tiers_for(rmap)
        due = [n for n in tiers if n not in self._values]
        due += [n for n in due_points(tiers, self.polls) if n in self._values]
        values = await self._read_points(dev, due)
        now = self.clock()
        self._values.update(values)
        self._read_at.update(dict.fromkeys(values, now))
        self.polls += 1
        tel = decode_telemetry(rmap, self._values)
        dev.last_telemetry = tel  # plan context (live limits) as Device.read_telemetry does
        return tel

    def ages_s(self) -> dict[CanonicalPoint, float]:
        """Age of each canonical point's value: that of its oldest register point."""
        if self._rmap is None:
            return {}
        now = self.clock()
        out: dict[CanonicalPoint, float] = {}
        for cp, src in self._rmap.telemetry.items():
            names = [t.point for t in src.terms] + ([src.times] if src.times else [])
            times = [self._read_at.get(n) for n in names]
            if all(t is not None for t in times):
                out[cp] = now - min(t for t in times if t is not None)
        return out

    async def read_frequency(self) -> float | None:
        """Grid frequency alone (one short read): the armed reserve's fast loop."""
        dev = self.points
        if dev is None:
            return (await self.device.read_telemetry()).frequency_hz
        src = dev.rmap.telemetry.get(CanonicalPoint.FREQUENCY_HZ)
        if src is None:
            return None
        names = [t.point for t in src.terms] + ([src.times] if src.times else [])
        values = await self._read_points(dev, names)
        now = self.clock()
        if dev.rmap is self._rmap:
            self._values.update(values)
            self._read_at.update(dict.fromkeys(values, now))
        return canonical(dev.rmap, src, values)
