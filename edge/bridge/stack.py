"""What is in force at a site and the power it asks for: the one place the sum is made. Pure.

:class:`InForce` holds, each with the command that set it and its expiry:

* ``held``: a predetermined setpoint (SET_POWER, or STOP's 0 kW) replacing the site's own
  baseline until it expires;
* ``arms``: per frequency product (FCR-N, FCR-D up, FCR-D down, FFR) the armed droop, its
  capacity as accepted (possibly clamped at arming);
* ``orders``: per aFRR/mFRR product the change against the baseline, as accepted.

A new arm or order of a product replaces that product's earlier one; the others stay. Nothing
in force: the site is handed back to its own mode (safe mode).

:func:`compose` is the arithmetic of every control cycle: the power to write is
``baseline + every armed product's response at the measured frequency + every order's change``
(facts §4.3: each reserve follows its own curve, the total is their sum), bounded. When the
bounds cut the sum, the cut is charged to the products in the order SvK limits them when
headroom is short, FCR-D first, then FFR, then FCR-N, then FRR (facts §3.6
[TR25 §3.9.1]): :attr:`Target.delivered` says what each product still gets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from contract.enums import Product
from contract.products import curve_for
from contract.records import ReserveArm
from edge.bridge.bounds import Bounds
from edge.bridge.droop import response_kw
from edge.bridge.model import FREQUENCY_PRODUCTS, BridgeCommand, Cause

#: Which product a shortfall of headroom is charged to first [TR25 §3.9.1] (facts §3.6).
LIMITATION_ORDER: tuple[Product, ...] = (
    Product.FCR_D_UP,
    Product.FCR_D_DOWN,
    Product.FFR,
    Product.FCR_N,
    Product.AFRR,
    Product.MFRR,
)


@dataclass(frozen=True)
class Held:
    """A predetermined setpoint in force (SET_POWER; STOP holds 0 kW), kW as accepted."""

    power_kw: float
    cmd: BridgeCommand


@dataclass(frozen=True)
class Arm:
    """An armed frequency product: its droop parameters with the accepted capacity."""

    params: ReserveArm
    cmd: BridgeCommand

    @property
    def product(self) -> Product:
        return self.params.product

    def reservation(self) -> tuple[float, float]:
        """(up, down) kW its full activation needs beyond the baseline."""
        return arm_reservation(self.params.product, self.params.capacity_kw)


@dataclass(frozen=True)
class Order:
    """An aFRR/mFRR order in force: a change against the baseline, kW as accepted."""

    product: Product
    delta_kw: float
    cmd: BridgeCommand

    def reservation(self) -> tuple[float, float]:
        return order_reservation(self.delta_kw)


def arm_reservation(product: Product, capacity_kw: float) -> tuple[float, float]:
    """(up, down) kW a product's full activation takes beyond the baseline: FCR-N both ways,
    FCR-D up and FFR up, FCR-D down down (its curve's direction)."""
    direction = curve_for(product).direction
    if direction > 0:
        return capacity_kw, 0.0
    if direction < 0:
        return 0.0, capacity_kw
    return capacity_kw, capacity_kw


def order_reservation(delta_kw: float) -> tuple[float, float]:
    """(up, down) kW an order's change takes: its own direction only."""
    return (delta_kw, 0.0) if delta_kw >= 0 else (0.0, -delta_kw)


_NONE: Mapping[Product, Arm] = MappingProxyType({})
_NO_ORDERS: Mapping[Product, Order] = MappingProxyType({})


@dataclass(frozen=True)
class InForce:
    """What a site holds now (see the module doc). Immutable: changes give a new one."""

    held: Held | None = None
    arms: Mapping[Product, Arm] = field(default_factory=lambda: _NONE)
    orders: Mapping[Product, Order] = field(default_factory=lambda: _NO_ORDERS)

    # ----------------------------------------------------------------- reading
    @property
    def empty(self) -> bool:
        """Nothing set, armed or ordered: the site belongs to its own mode."""
        return self.held is None and not self.arms and not self.orders

    def commands(self) -> Iterator[BridgeCommand]:
        if self.held is not None:
            yield self.held.cmd
        yield from (a.cmd for a in self.arms.values())
        yield from (o.cmd for o in self.orders.values())

    def newest(self) -> BridgeCommand | None:
        """The most recently issued command still in force."""
        return max(self.commands(), key=lambda c: c.event_time, default=None)

    def earliest_expiry(self) -> datetime | None:
        return min((c.valid_until for c in self.commands()), default=None)

    def armed_kw(self, product: Product) -> float:
        arm = self.arms.get(product)
        return 0.0 if arm is None else arm.params.capacity_kw

    def order_kw(self, product: Product) -> float:
        order = self.orders.get(product)
        return 0.0 if order is None else order.delta_kw

    def first_armed(self) -> Product:
        """The legacy one-product view: the first armed of FCR-N, FCR-D up, FCR-D down, FFR."""
        return next((p for p in FREQUENCY_PRODUCTS if p in self.arms), Product.NONE)

    def reserved(self, exclude: Product | None = None) -> tuple[float, float]:
        """(up, down) kW the full activation of every armed product and order takes (but
        ``exclude``'s)."""
        up = down = 0.0
        for p, a in self.arms.items():
            if p is not exclude:
                u, d = a.reservation()
                up, down = up + u, down + d
        for p, o in self.orders.items():
            if p is not exclude:
                u, d = o.reservation()
                up, down = up + u, down + d
        return up, down

    def responses(self, frequency_hz: float | None) -> dict[Product, float]:
        """Each armed product's response at ``frequency_hz`` (none without a frequency)."""
        if frequency_hz is None:
            return {}
        return {p: response_kw(a.params, frequency_hz) for p, a in self.arms.items()}

    # ----------------------------------------------------------------- changes
    def expire(self, now: datetime) -> InForce:
        """Without what has expired by ``now`` (the same object when nothing has)."""
        held = self.held if self.held is None or not self.held.cmd.expired(now) else None
        arms = {p: a for p, a in self.arms.items() if not a.cmd.expired(now)}
        orders = {p: o for p, o in self.orders.items() if not o.cmd.expired(now)}
        if held is self.held and len(arms) == len(self.arms) and len(orders) == len(self.orders):
            return self
        return InForce(held, MappingProxyType(arms), MappingProxyType(orders))

    def with_held(self, held: Held | None) -> InForce:
        return replace(self, held=held)

    def with_arm(self, arm: Arm) -> InForce:
        return replace(self, arms=MappingProxyType({**self.arms, arm.product: arm}))

    def without_arm(self, product: Product) -> InForce:
        arms = {p: a for p, a in self.arms.items() if p is not product}
        return replace(self, arms=MappingProxyType(arms))

    def with_order(self, order: Order) -> InForce:
        return replace(self, orders=MappingProxyType({**self.orders, order.product: order}))

    def without_order(self, product: Product) -> InForce:
        orders = {p: o for p, o in self.orders.items() if p is not product}
        return replace(self, orders=MappingProxyType(orders))


@dataclass(frozen=True)
class Target:
    """The power to write now and how it is made up.

    ``wanted``: per product its response (armed products) or change (orders) before the
    bounds; ``delivered``: the same after the bounds cut the sum (in
    :data:`LIMITATION_ORDER`); ``total_kw = baseline_kw + sum(delivered)``.
    """

    total_kw: float
    baseline_kw: float
    wanted: Mapping[Product, float]
    delivered: Mapping[Product, float]
    cause: Cause | None

    @property
    def bounded(self) -> bool:
        return self.cause is not None

    @property
    def reserve_kw(self) -> float:
        """The armed products' part of the sum (their wanted responses)."""
        return sum((v for p, v in self.wanted.items() if p in FREQUENCY_PRODUCTS), 0.0)


def compose(
    baseline_kw: float, in_force: InForce, frequency_hz: float | None, bounds: Bounds
) -> Target:
    """baseline + every armed response at ``frequency_hz`` + every order's change, bounded."""
    wanted = in_force.responses(frequency_hz)
    for p, o in in_force.orders.items():
        wanted[p] = o.delta_kw
    raw = baseline_kw + sum(wanted.values(), 0.0)
    total, cause = bounds.clamp(raw)
    delivered = dict(wanted)
    cut = raw - total  # > 0: too much discharge, < 0: too much charge
    for p in LIMITATION_ORDER:
        if abs(cut) < 1e-12:
            break
        share = delivered.get(p, 0.0)
        if share * cut <= 0:  # not pushing towards the bound that cut
            continue
        take = min(abs(share), abs(cut)) * (1.0 if cut > 0 else -1.0)
        delivered[p] = share - take
        cut -= take
    return Target(total, baseline_kw, MappingProxyType(wanted), MappingProxyType(delivered), cause)
