"""Deterministic, seedable PV and household-load profiles (kW) for simulated sites."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class SiteProfile:
    seed: int = 0
    pv_peak_kw: float = 6.0
    base_load_kw: float = 0.4
    peak_load_kw: float = 2.5

    def _noise(self, t_s: float, salt: int) -> float:
        # One value per 10 s slot: deterministic for (seed, slot), independent of call order.
        slot = int(t_s // 10)
        return random.Random(self.seed * 1_000_003 + slot * 31 + salt).uniform(-1.0, 1.0)

    def pv_kw(self, t_s: float) -> float:
        """Bell-shaped day between 06:00 and 20:00 (t_s = seconds since midnight)."""
        hour = (t_s / 3600.0) % 24.0
        if not 6.0 <= hour <= 20.0:
            return 0.0
        shape = math.sin(math.pi * (hour - 6.0) / 14.0) ** 2
        cloud = 0.85 + 0.15 * self._noise(t_s, 1)
        return round(max(0.0, self.pv_peak_kw * shape * cloud), 4)

    def load_kw(self, t_s: float) -> float:
        """Base load plus morning and evening peaks."""
        hour = (t_s / 3600.0) % 24.0
        peaks = math.exp(-((hour - 7.5) ** 2) / 1.5) + 1.2 * math.exp(-((hour - 19.0) ** 2) / 3.0)
        noise = 1.0 + 0.1 * self._noise(t_s, 2)
        return round(max(0.0, (self.base_load_kw + self.peak_load_kw * peaks / 1.2) * noise), 4)
