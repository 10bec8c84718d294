"""Bounded time series of the view model (pure: numpy only).

:class:`SiteHistory` is one site's recent samples (commanded and measured power, baseline,
SoC, active faults) in a ring of numpy columns: 28 bytes a sample (int64 time, five float32
values), grown by doubling up to ``capacity``, so a 1,300-site fleet at 1 Hz holds its 15
minutes in about 33 MB and a site that reported once costs a few hundred bytes. When full,
the oldest sample is overwritten: at more than ``capacity / window`` samples per second the
ring covers less than the window (the UI asks for 4 Hz at most, the bridges send 1 Hz).

Missing values (no setpoint in force, no baseline reported, a value beyond float32's range)
are NaN inside and ``None`` outside (JSON ``null``: a gap in the chart).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: the sampled fields, in column order
SITE_FIELDS = ("power_kw", "setpoint_kw", "baseline_kw", "soc_pct", "faults")
_INITIAL = 16
_F32_MAX = float(np.finfo(np.float32).max)  # beyond it a value is stored as missing


def finite(value: object) -> float | None:
    """A finite float, or None (for None, NaN, infinities, bools and non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class SiteHistory:
    """The last samples of one site, oldest first (see the module doc)."""

    __slots__ = ("_times", "_values", "capacity", "count", "start")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        size = min(_INITIAL, capacity)
        self._times: npt.NDArray[np.int64] = np.zeros(size, np.int64)
        self._values: npt.NDArray[np.float32] = np.full(
            (size, len(SITE_FIELDS)), np.nan, np.float32
        )
        self.start = 0  # index of the oldest sample
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def _grow(self) -> None:
        size = len(self._times)
        new = min(self.capacity, size * 2)
        order = (self.start + np.arange(self.count)) % size
        times = np.zeros(new, np.int64)
        values = np.full((new, len(SITE_FIELDS)), np.nan, np.float32)
        times[: self.count] = self._times[order]
        values[: self.count] = self._values[order]
        self._times, self._values, self.start = times, values, 0

    def append(self, t_us: int, values: Sequence[float | None]) -> None:
        """Add a sample (``values`` in ``SITE_FIELDS`` order; None: missing)."""
        size = len(self._times)
        if self.count == size and size < self.capacity:
            self._grow()
            size = len(self._times)
        if self.count < size:
            slot = (self.start + self.count) % size
            self.count += 1
        else:  # full at capacity: overwrite the oldest
            slot = self.start
            self.start = (self.start + 1) % size
        self._times[slot] = t_us
        self._values[slot] = [
            v if v is not None and -_F32_MAX <= v <= _F32_MAX else math.nan for v in values
        ]

    @property
    def first_time(self) -> int | None:
        """The oldest sample's time (µs), None when empty."""
        return int(self._times[self.start]) if self.count else None

    @property
    def last_time(self) -> int | None:
        if not self.count:
            return None
        return int(self._times[(self.start + self.count - 1) % len(self._times)])

    def since(
        self,
        after_us: int | None,
        not_before_us: int | None = None,
        until_us: int | None = None,
    ) -> dict[str, list[Any]]:
        """Columns of the samples newer than ``after_us`` (all: None), not older than
        ``not_before_us`` and not newer than ``until_us``: ``{"t": [us...], "power_kw":
        [...], ...}``, None for missing."""
        size = len(self._times)
        order = (self.start + np.arange(self.count)) % size
        times = self._times[order]
        keep = np.ones(self.count, bool)
        if after_us is not None:
            keep &= times > after_us
        if not_before_us is not None:
            keep &= times >= not_before_us
        if until_us is not None:
            keep &= times <= until_us
        rows = order[keep]
        out: dict[str, list[Any]] = {"t": self._times[rows].tolist()}
        values = self._values[rows]
        for i, name in enumerate(SITE_FIELDS):
            column = values[:, i].astype(np.float64)
            rounded = np.round(column, 4).tolist()
            out[name] = [v if math.isfinite(v) else None for v in rounded]
        return out
