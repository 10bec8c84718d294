"""Room at a site: what every product in force reserves, what a new one may take, what is
left for the allocator. Pure.

Per direction (facts §3.6 [TR25 §3.9.1], §4.3 [TR25 §3.6]): headroom = the bound (battery,
inverter, grid connection with the measured load: :class:`edge.bridge.bounds.Bounds`) -
baseline - what every armed product and order needs at full activation. The baseline must
leave room for the full simultaneous activation of every contracted reserve.

Bad input is clamped and said (:class:`Admitted`, reported as CommandResult CLAMPED with the
limiting term in ``likely_cause`` and the reason text):

* :func:`admit_arm`: a new arm of a product may take what the bounds leave after the baseline
  and every *other* product in force (first come keeps: an accepted commitment is never cut
  to make room for a later one), in each direction its curve needs; and, where the capacity
  and SoC are known, the energy of its limited-energy reservation [TR25 §3.5 Table 10]
  (facts §5.1): FCR-N 1 h of full activation each way, FCR-D 1/3 h in its direction, FFR its
  30 s of support, an order its change for as long as it is valid. The energy rule is
  applied to every site (the stricter reading: a battery is a limited energy reservoir
  whenever its energy is short of 2 h of its capacity, and that is the only case in which it
  could bind anyway);
* :func:`admit_order`: an order's change, the same way in its own direction;
* :func:`admit_setpoint`: a SET_POWER within the bounds, leaving room for what is armed and
  ordered.

When headroom shrinks after arming (a load spike, SoC), nothing is disarmed: the headroom goes
to 0, the write is bounded (:func:`edge.bridge.stack.compose` charges the cut to FCR-D first)
and :func:`shortfalls` says by how much each product is short, in SvK's order of limitation:
what the allocator reads to move shares elsewhere. The normal-state energy management power
reservations (Table 10: 0.34 C for FCR-N, 0.2 C against the direction for FCR-D) are not
made: the bridge runs no NEM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from contract.enums import Product
from contract.products import FFR_SUPPORT_S, Cited, cite
from contract.records import ReserveArm
from edge.bridge.bounds import Bounds, EnergyRoom
from edge.bridge.model import Cause
from edge.bridge.stack import LIMITATION_ORDER, InForce, arm_reservation

#: Energy of a limited-energy reservation, in hours of full activation per direction
#: [TR25 §3.5 Table 10] (facts §5.1): (up, down).
FCRN_ENERGY_H = cite(1.0, "[TR25 §3.5 Table 10] FCR-N energy 1 h x C up and down (provisional)")
FCRD_ENERGY_H = cite(1.0 / 3.0, "[TR25 §3.5 Table 10] FCR-D 1/3 h x C in its direction")
FFR_ENERGY_H = cite(FFR_SUPPORT_S / 3600.0, "[SVK-FFR] full activation supported >= 30 s")
_ZERO = cite(0.0, "[TR25 §3.5 Table 10] no energy against the product's direction")
ENERGY_HOURS: Mapping[Product, tuple[Cited, Cited]] = MappingProxyType(
    {
        Product.FCR_N: (FCRN_ENERGY_H, FCRN_ENERGY_H),
        Product.FCR_D_UP: (FCRD_ENERGY_H, _ZERO),
        Product.FCR_D_DOWN: (_ZERO, FCRD_ENERGY_H),
        Product.FFR: (FFR_ENERGY_H, _ZERO),
    }
)

_EPS = 1e-9
#: A clamped capacity or change is rounded down to whole watts (what registers and the
#: allocator resolve: ``AllocatorConfig.resolution_kw``), so float noise never arms 1e-200 kW.
RESOLUTION_KW = 0.001


@dataclass(frozen=True)
class Admitted:
    """What a command may have: ``kw`` (a capacity, a change or a setpoint) of ``requested_kw``;
    ``cause`` and ``reason`` when it was clamped."""

    kw: float
    requested_kw: float
    cause: Cause | None = None
    reason: str | None = None

    @property
    def clamped(self) -> bool:
        return self.cause is not None


@dataclass(frozen=True)
class _Cap:
    kw: float
    cause: Cause
    why: str


def _hours_left(valid_until: datetime, now: datetime) -> float:
    return max(0.0, (valid_until - now).total_seconds()) / 3600.0


def reserved_energy(
    in_force: InForce, now: datetime, exclude: Product | None = None
) -> tuple[float, float]:
    """(up, down) kWh the limited-energy reservations of what is in force take."""
    up = down = 0.0
    for p, arm in in_force.arms.items():
        if p is not exclude:
            h_up, h_down = ENERGY_HOURS[p]
            up += arm.params.capacity_kw * h_up
            down += arm.params.capacity_kw * h_down
    for p, order in in_force.orders.items():
        if p is not exclude:
            e = abs(order.delta_kw) * _hours_left(order.cmd.valid_until, now)
            up, down = (up + e, down) if order.delta_kw > 0 else (up, down + e)
    return up, down


def _power_caps(
    need: tuple[float, float],
    baseline_kw: float,
    bounds: Bounds,
    others: tuple[float, float],
) -> list[_Cap]:
    caps = []
    if need[0] > 0:
        room = bounds.max_kw - baseline_kw - others[0]
        caps.append(
            _Cap(
                room / need[0],
                bounds.up_cause,
                f"upward bound {bounds.max_kw:.3f} kW ({bounds.up_cause}) - baseline "
                f"{baseline_kw:.3f} kW - other products {others[0]:.3f} kW at full activation",
            )
        )
    if need[1] > 0:
        room = baseline_kw - bounds.min_kw - others[1]
        caps.append(
            _Cap(
                room / need[1],
                bounds.down_cause,
                f"downward bound {-bounds.min_kw:.3f} kW ({bounds.down_cause}) + baseline "
                f"{baseline_kw:.3f} kW - other products {others[1]:.3f} kW at full activation",
            )
        )
    return caps


def _energy_caps(
    hours: tuple[float, float], energy: EnergyRoom, others: tuple[float, float]
) -> list[_Cap]:
    caps = []
    for h, have, other, side in (
        (hours[0], energy.up_kwh, others[0], "above the SoC reserve"),
        (hours[1], energy.down_kwh, others[1], "below the upper SoC reserve"),
    ):
        if h > 0 and have is not None:
            caps.append(
                _Cap(
                    (have - other) / h,
                    Cause.SOC_LIMIT,
                    f"energy {have:.3f} kWh {side} - other products {other:.3f} kWh, "
                    f"for {h * 60:.1f} min of full activation",
                )
            )
    return caps


def _admit(what: str, requested: float, caps: list[_Cap]) -> Admitted:
    """``requested`` (>= 0) within the tightest of ``caps``."""
    tight = min(caps, key=lambda c: c.kw, default=None)
    if tight is None:
        return Admitted(requested, requested)
    if requested <= tight.kw + _EPS:  # fits (within rounding: then exactly the room there is)
        return Admitted(min(requested, max(0.0, tight.kw)), requested)
    kw = math.floor(max(0.0, tight.kw) / RESOLUTION_KW) * RESOLUTION_KW  # never above the room
    reason = f"{what} {requested:.3f} kW clamped to {kw:.3f} kW by {tight.cause}: {tight.why}"
    return Admitted(kw, requested, tight.cause, reason)


def admit_arm(
    arm: ReserveArm,
    in_force: InForce,
    *,
    baseline_kw: float,
    bounds: Bounds,
    energy: EnergyRoom,
    now: datetime,
) -> Admitted:
    """The capacity a new arm of ``arm.product`` may have (it replaces that product's arm)."""
    p = arm.product
    caps = _power_caps(arm_reservation(p, 1.0), baseline_kw, bounds, in_force.reserved(p))
    caps += _energy_caps(ENERGY_HOURS[p], energy, reserved_energy(in_force, now, p))
    return _admit(f"{p} capacity", arm.capacity_kw, caps)


def admit_order(
    product: Product,
    delta_kw: float,
    *,
    valid_until: datetime,
    in_force: InForce,
    baseline_kw: float,
    bounds: Bounds,
    energy: EnergyRoom,
    now: datetime,
) -> Admitted:
    """The change a new order of ``product`` may have (it replaces that product's order)."""
    sign = 1.0 if delta_kw >= 0 else -1.0
    need = (1.0, 0.0) if sign > 0 else (0.0, 1.0)
    caps = _power_caps(need, baseline_kw, bounds, in_force.reserved(product))
    h = _hours_left(valid_until, now)
    e_hours = (h, 0.0) if sign > 0 else (0.0, h)
    caps += _energy_caps(e_hours, energy, reserved_energy(in_force, now, product))
    got = _admit(f"{product} order change", abs(delta_kw), caps)
    return Admitted(sign * got.kw, delta_kw, got.cause, got.reason)


def admit_setpoint(power_kw: float, in_force: InForce, bounds: Bounds) -> Admitted:
    """A SET_POWER's setpoint within the bounds, leaving room for the full activation of what
    is armed and ordered (when the bounds still hold all of it)."""
    kw, cause = bounds.clamp(power_kw)
    reason = None
    if cause is not None:
        reason = f"setpoint {power_kw:.3f} kW clamped to {kw:.3f} kW by {cause}"
    up, down = in_force.reserved()
    hi, lo = bounds.max_kw - up, bounds.min_kw + down
    if lo > hi:  # over-committed already: anywhere between them cuts the least in total
        hi, lo = min(lo, bounds.max_kw), max(hi, bounds.min_kw)
    if not lo - _EPS <= kw <= hi + _EPS:
        side, cause = (hi, bounds.up_cause) if kw > hi else (lo, bounds.down_cause)
        reason = (
            f"setpoint {power_kw:.3f} kW clamped to {side:.3f} kW: the bound "
            f"({cause}) less {up:.3f} kW up / {down:.3f} kW down for the armed products "
            "and orders at full activation"
        )
        kw = side
    return Admitted(kw, power_kw, cause, reason)


def headroom(bounds: Bounds, baseline_kw: float, in_force: InForce) -> tuple[float, float]:
    """(up, down) kW >= 0 beyond the baseline and every full activation: what the allocator
    may still hand out at this site."""
    up, down = in_force.reserved()
    return (
        max(0.0, bounds.max_kw - baseline_kw - up),
        max(0.0, baseline_kw - bounds.min_kw - down),
    )


def shortfalls(bounds: Bounds, baseline_kw: float, in_force: InForce) -> dict[Product, float]:
    """kW of each product's full activation the bounds no longer hold, charged in SvK's order of
    limitation (FCR-D first, then FFR, FCR-N, FRR: facts §3.6); products short of nothing are
    left out."""
    short_up = max(0.0, -(bounds.max_kw - baseline_kw - in_force.reserved()[0]))
    short_down = max(0.0, -(baseline_kw - bounds.min_kw - in_force.reserved()[1]))
    out: dict[Product, float] = {}
    for p in LIMITATION_ORDER:
        arm, order = in_force.arms.get(p), in_force.orders.get(p)
        if arm is not None:
            up, down = arm.reservation()
        elif order is not None:
            up, down = order.reservation()
        else:
            continue
        cut_up, cut_down = min(up, short_up), min(down, short_down)
        short_up, short_down = short_up - cut_up, short_down - cut_down
        if max(cut_up, cut_down) > _EPS:
            out[p] = max(cut_up, cut_down)
    return out
