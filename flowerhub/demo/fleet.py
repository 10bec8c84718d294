"""Fleet composition for the demo: sites mixed over the OEMs and their models, from a seed.

Pure and deterministic: ``compose_fleet(60, seed=7)`` always gives the same 60 sites. The
sites go round-robin over the OEM register maps (``edge/maps/*.yaml``), so any ``n`` holds
each OEM ``n // 3`` or ``n // 3 + 1`` times; within an OEM the model, battery size, starting
SoC and household load are drawn from the seed. Battery power never exceeds the inverter's
rating; the starting SoC leaves room both ways above the bridge's SoC reserves.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge.hal.registermap import ModelInfo

# LUNA2000-style modules: 5 kWh steps; power 0.5 C, at most the inverter's rating.
CAPACITIES_KWH = (5.0, 10.0, 15.0)
SOC_RANGE_PCT = (35.0, 80.0)
BASE_LOAD_KW = (0.2, 0.9)
PEAK_LOAD_KW = (1.0, 4.0)
PV_PEAK_KW = (0.0, 8.0)


class FleetError(ValueError):
    """A fleet that cannot be composed (size, no OEM maps, unknown OEM)."""


@dataclass(frozen=True)
class SiteSpec:
    """One simulated home: inverter, battery, starting state and household profile."""

    index: int
    site_id: str
    oem: str
    model: str
    rated_power_kw: float
    capacity_kwh: float
    max_power_kw: float
    soc_pct: float
    base_load_kw: float
    peak_load_kw: float
    pv_peak_kw: float
    seed: int


def site_id(index: int) -> str:
    return f"demo-{index:04d}"


def compose_fleet(
    n: int,
    *,
    seed: int,
    models: Mapping[str, Sequence[ModelInfo]],
) -> list[SiteSpec]:
    """``n`` sites over the OEMs of ``models`` (oem -> models of its register map)."""
    if n < 1:
        raise FleetError(f"a fleet needs at least one site, got {n}")
    oems = sorted(o for o, ms in models.items() if ms)
    if not oems:
        raise FleetError("no OEM register map with models to build a fleet from")
    rng = random.Random(seed)
    sites: list[SiteSpec] = []
    for i in range(n):
        oem = oems[i % len(oems)]
        # Ratings the home batteries of this project use (10-20 kW class and the small ones).
        model = rng.choice(list(models[oem]))
        rated = model.rated_power_kw or 10.0
        capacity = rng.choice(CAPACITIES_KWH)
        max_power = round(min(rated, 0.5 * capacity), 2)
        sites.append(
            SiteSpec(
                index=i,
                site_id=site_id(i),
                oem=oem,
                model=model.name,
                rated_power_kw=rated,
                capacity_kwh=capacity,
                max_power_kw=max_power,
                soc_pct=round(rng.uniform(*SOC_RANGE_PCT), 1),
                base_load_kw=round(rng.uniform(*BASE_LOAD_KW), 2),
                peak_load_kw=round(rng.uniform(*PEAK_LOAD_KW), 2),
                pv_peak_kw=round(rng.uniform(*PV_PEAK_KW), 2),
                seed=seed * 10_000 + i,
            )
        )
    return sites


def map_models() -> dict[str, list[ModelInfo]]:
    """Every OEM register map's models (loads ``edge/maps``)."""
    from edge.hal.maps import load_all

    return {oem: list(rmap.header.models) for oem, rmap in load_all().items()}


def describe(sites: Sequence[SiteSpec]) -> str:
    """One line: sites per OEM, total power and energy."""
    per_oem = Counter(s.oem for s in sites)
    power = sum(s.max_power_kw for s in sites)
    energy = sum(s.capacity_kwh for s in sites)
    mix = ", ".join(f"{oem} {count}" for oem, count in sorted(per_oem.items()))
    return f"{len(sites)} sites ({mix}); {power:.1f} kW, {energy:.0f} kWh"
