"""How far the battery may go right now: battery, inverter and grid-connection limits. Pure.

:class:`Bounds` is the range of battery power the bridge may write (kW, + = discharging):

* the battery and inverter: :class:`edge.bridge.model.PowerLimits` (rated power, site battery
  limits, BMS limits, SoC reserve: :func:`edge.bridge.safety.power_limits`);
* the grid connection (site config ``grid``): with household load ``L`` and PV ``S``, the grid
  sees ``S + P - L``; importing at most ``I`` (main fuse) and exporting at most ``E`` means
  ``P >= L - S - I`` and ``P <= E + L - S``. The battery is never driven by these: when the
  load alone is above the fuse, or PV alone above the export limit, the bound stops at 0 kW
  (what the house does without the battery is not the battery's to fix).

:class:`EnergyRoom` is the energy the battery holds above its SoC reserve (for discharge) and
below its upper reserve (for charge), kWh, when the capacity is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.bridge.model import Cause, PowerLimits


@dataclass(frozen=True)
class Bounds:
    """Battery power range now: ``min_kw <= 0 <= max_kw``, and what binds each end."""

    max_kw: float
    min_kw: float
    up_cause: Cause
    down_cause: Cause

    def clamp(self, power_kw: float) -> tuple[float, Cause | None]:
        """The power within the bounds and the binding limit, None when it was within."""
        if power_kw > self.max_kw:
            return self.max_kw, self.up_cause
        if power_kw < self.min_kw:
            return self.min_kw, self.down_cause
        return power_kw, None

    @classmethod
    def of_limits(cls, limits: PowerLimits) -> Bounds:
        """The battery's and inverter's limits alone (no grid connection limit known)."""
        return cls(
            limits.max_discharge_kw,
            -limits.max_charge_kw,
            limits.discharge_cause,
            limits.charge_cause,
        )


def bounds(
    limits: PowerLimits,
    *,
    import_max_kw: float | None = None,
    export_max_kw: float | None = None,
    load_kw: float | None = None,
    pv_kw: float | None = None,
) -> Bounds:
    """The range of battery power now (see the module doc). Grid limits apply only when the
    load and PV are measured."""
    out = Bounds.of_limits(limits)
    if load_kw is None or pv_kw is None:
        return out
    net = max(0.0, load_kw) - max(0.0, pv_kw)
    hi, up = out.max_kw, out.up_cause
    lo, down = out.min_kw, out.down_cause
    if export_max_kw is not None:
        grid_hi = max(0.0, export_max_kw + net)
        if grid_hi < hi:
            hi, up = grid_hi, Cause.GRID_LIMIT
    if import_max_kw is not None:
        grid_lo = min(0.0, net - import_max_kw)
        if grid_lo > lo:
            lo, down = grid_lo, Cause.GRID_LIMIT
    return Bounds(hi, lo, up, down)


@dataclass(frozen=True)
class EnergyRoom:
    """kWh the battery can still give (``up_kwh``, above the SoC reserve) and take
    (``down_kwh``, below the upper reserve); None: the capacity or SoC is unknown."""

    up_kwh: float | None = None
    down_kwh: float | None = None

    @classmethod
    def of(
        cls, soc_pct: float | None, capacity_kwh: float | None, min_pct: float, max_pct: float
    ) -> EnergyRoom:
        if soc_pct is None or capacity_kwh is None or capacity_kwh <= 0:
            return cls()
        up = max(0.0, soc_pct - min_pct) / 100.0 * capacity_kwh
        down = max(0.0, max_pct - soc_pct) / 100.0 * capacity_kwh
        return cls(up, down)
