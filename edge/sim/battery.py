"""Battery model for simulated inverters, pure: first-order response with dead time, limits.

Power is canonical: positive = discharging. The model never touches Modbus.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BatteryParams:
    capacity_kwh: float = 10.0
    max_charge_kw: float = 5.0
    max_discharge_kw: float = 5.0
    min_soc_pct: float = 5.0
    max_soc_pct: float = 100.0
    tau_s: float = 1.0
    dead_time_s: float = 0.2

    def __post_init__(self) -> None:
        if self.capacity_kwh <= 0:
            raise ValueError("capacity_kwh must be > 0")
        if self.max_charge_kw < 0 or self.max_discharge_kw < 0:
            raise ValueError("power limits must be >= 0")
        if not 0 <= self.min_soc_pct < self.max_soc_pct <= 100:
            raise ValueError("need 0 <= min_soc < max_soc <= 100")
        if self.tau_s < 0 or self.dead_time_s < 0:
            raise ValueError("tau_s and dead_time_s must be >= 0")


@dataclass
class BatteryModel:
    params: BatteryParams
    soc_pct: float = 50.0
    power_kw: float = 0.0
    time_s: float = 0.0
    _pending: deque[tuple[float, float]] = field(default_factory=deque)
    _active_target: float = 0.0

    def clamp(self, target_kw: float) -> float:
        """Apply power and SoC limits: no discharge at min SoC, no charge at max SoC."""
        p = self.params
        target = max(-p.max_charge_kw, min(p.max_discharge_kw, target_kw))
        if target > 0 and self.soc_pct <= p.min_soc_pct:
            return 0.0
        if target < 0 and self.soc_pct >= p.max_soc_pct:
            return 0.0
        return target

    def step(self, dt_s: float, target_kw: float) -> float:
        """Advance dt_s seconds towards target_kw; returns the actual power (kW)."""
        if dt_s < 0:
            raise ValueError("dt_s must be >= 0")
        self.time_s += dt_s
        self._pending.append((self.time_s + self.params.dead_time_s, target_kw))
        while self._pending and self._pending[0][0] <= self.time_s + 1e-12:
            self._active_target = self._pending.popleft()[1]
        target = self.clamp(self._active_target)
        tau = self.params.tau_s
        alpha = 1.0 if tau == 0 else 1.0 - math.exp(-dt_s / tau)
        self.power_kw += (target - self.power_kw) * alpha
        self.power_kw = self.clamp(self.power_kw)
        energy_kwh = self.power_kw * dt_s / 3600.0
        self.soc_pct -= energy_kwh / self.params.capacity_kwh * 100.0
        self.soc_pct = max(0.0, min(100.0, self.soc_pct))
        return self.power_kw
