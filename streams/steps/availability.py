"""Per-site room for the allocator: how much each product may still take at each site.

Reserves and orders are deltas on top of a site's baseline (design: "Delivered reserve =
power - baseline"); several products share one site's headroom. Per site, from its latest
SiteTelemetry (``site_room``):

- no telemetry, or telemetry older than ``telemetry_max_age_s`` -> excluded (OFFLINE);
  ``faulted`` or mode FAULT -> excluded (FAULTED);
- ``reference_kw``: the site's baseline (``baseline_kw``); telemetry without one (written
  before baselines) states its headroom relative to the battery power, so that is the
  reference then;
- what the site holds per product (``held``, kW per direction): ``armed_fcr_n_kw`` both
  ways, ``armed_fcr_d_up_kw``/``armed_ffr_kw`` up, ``armed_fcr_d_down_kw`` down, the signed
  ``order_afrr_kw``/``order_mfrr_kw`` in their sign's direction;
- ``up_kw``/``down_kw``, the room for every delta together in a direction: the headroom the
  site reports (free beyond the baseline and every product's full activation) plus what it
  holds, bounded by the battery/inverter limits around the reference
  (``max_discharge_kw - reference`` up, ``max_charge_kw + reference`` down, and the site
  config's ``SiteLimits`` likewise). The bound matters when a site is over-committed:
  headroom never goes below 0, the limits show by how much the products no longer fit.

A product's availability at a site (``product_availability``): the room in its direction(s)
minus what every OTHER product uses there, where a product uses the larger of what the site
reports holding and the share the allocator gave it (``ProductUse``: a share just sent is not
in the telemetry yet, a share just taken back may still be). So its own share counts as
available to it, and the full activations of all products together fit the room. FCR-N
needs both directions (the smaller one); FCR-D up and FFR up, FCR-D down down; an order
or an energy target in the direction of its sign.

Energy dispatch (product NONE, SET_POWER) is absolute: a predetermined setpoint that
replaces the baseline, the other products on top. Its availability is a battery power:
``reference + room up - other products' use up`` discharging, ``room down - other products'
use down - reference`` charging, within the battery limits; a CommandResult CLAMPED or
OVERRIDDEN within ``clamp_window_s`` derates the direction it asked for to the power
measured (or written): the site showed it cannot go further right now (``derated``: energy
dispatch only). Reserve arms and orders are not derated by results (a result's powers are
absolute battery powers, not deltas against the baseline the site had then): the bridge
reports what a clamping or overriding inverter can deliver in its telemetry
(``edge.bridge.ceiling``: the headroom, and each ``armed_*``/``order_*`` held, within the
ceiling it observed), so the room above shrinks and the allocator moves the share
(``allocator.needed``, ``split_sticky``); a recent such result is named in the room
(``clamp``) for the log line of that move.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from contract.enums import CommandStatus, Product, SiteMode
from contract.errors import InvalidConfigError
from contract.fields import MICROS_PER_S
from contract.records import CommandResult
from streams.steps.setpoint_filter import SiteLimits

_DERATING = frozenset({CommandStatus.CLAMPED, CommandStatus.OVERRIDDEN})


class Exclusion(StrEnum):
    """Why a site gets no setpoint."""

    NO_TELEMETRY = "NO_TELEMETRY"
    OFFLINE = "OFFLINE"
    FAULTED = "FAULTED"


class Direction(StrEnum):
    """Which room a product's share draws on."""

    UP = "UP"  # discharge only (FCR-D up, FFR)
    DOWN = "DOWN"  # charge only (FCR-D down)
    BOTH = "BOTH"  # the same capacity both ways (FCR-N)
    SIGNED = "SIGNED"  # a signed change: up when > 0, down when < 0 (aFRR, mFRR orders)
    ABSOLUTE = "ABSOLUTE"  # a battery power replacing the baseline (energy dispatch, NONE)


#: Where each product's share goes.
DIRECTION: Mapping[Product, Direction] = MappingProxyType(
    {
        Product.FCR_N: Direction.BOTH,
        Product.FCR_D_UP: Direction.UP,
        Product.FFR: Direction.UP,
        Product.FCR_D_DOWN: Direction.DOWN,
        Product.AFRR: Direction.SIGNED,
        Product.MFRR: Direction.SIGNED,
        Product.NONE: Direction.ABSOLUTE,
    }
)


MAX_ORDER_MARGIN = 0.2  # beyond 20 % an "order margin" is another order


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    """Allocator thresholds (from ``streams.settings.AllocatorSettings`` in the worker).

    ``resolution_kw``: setpoints are whole multiples of it; ``1 / resolution_kw`` must be an
    integer (0.001 = 1 W, the default). ``order_margin``: an aFRR/mFRR order is split as
    ``requested x (1 + order_margin)``, so a fleet whose sites track their moving baselines
    a little behind (the edge writes a target when it moved by ``min_step_kw``) still
    delivers the whole order (full = 100 %, no tolerance); 0 by default, at most 0.2.
    """

    telemetry_max_age_s: float = 10.0
    clamp_window_s: float = 60.0
    resolution_kw: float = 0.001
    issued_by: str = "allocator"
    order_margin: float = 0.0

    def __post_init__(self) -> None:
        for name in ("telemetry_max_age_s", "clamp_window_s", "resolution_kw"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidConfigError(
                    f"AllocatorConfig.{name} must be finite and >= 0, got {value}"
                )
        if self.resolution_kw <= 0:
            raise InvalidConfigError("AllocatorConfig.resolution_kw must be > 0")
        if not 0.0 <= self.order_margin <= MAX_ORDER_MARGIN:
            raise InvalidConfigError(
                f"AllocatorConfig.order_margin must be within [0, {MAX_ORDER_MARGIN}], got "
                f"{self.order_margin}"
            )
        scale = 1.0 / self.resolution_kw
        if abs(scale - round(scale)) > 1e-9 * scale:
            raise InvalidConfigError(
                f"AllocatorConfig.resolution_kw must be 1/n for an integer n, got "
                f"{self.resolution_kw}"
            )

    @property
    def scale(self) -> int:
        """Units per kW (1000 for a 1 W resolution)."""
        return round(1.0 / self.resolution_kw)


class Reading(Protocol):
    """The part of a site's telemetry the room needs: a ``SiteTelemetry``, or the leader's
    ``sitebook.SampleReading`` (a partition's slice row)."""

    @property
    def event_time(self) -> int: ...
    @property
    def battery_power_kw(self) -> float: ...
    @property
    def headroom_up_kw(self) -> float: ...
    @property
    def headroom_down_kw(self) -> float: ...
    @property
    def max_discharge_kw(self) -> float: ...
    @property
    def max_charge_kw(self) -> float: ...
    @property
    def faulted(self) -> bool: ...
    @property
    def mode(self) -> SiteMode: ...
    @property
    def baseline_kw(self) -> float | None: ...
    @property
    def armed_fcr_n_kw(self) -> float: ...
    @property
    def armed_fcr_d_up_kw(self) -> float: ...
    @property
    def armed_fcr_d_down_kw(self) -> float: ...
    @property
    def armed_ffr_kw(self) -> float: ...
    @property
    def order_afrr_kw(self) -> float: ...
    @property
    def order_mfrr_kw(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """What the allocator knows about one site: its latest telemetry and command result, and
    the limits from its site configuration (``None`` = no extra limit)."""

    site_id: str
    telemetry: Reading | None
    last_result: CommandResult | None = None
    limits: SiteLimits | None = None


_NOTHING_HELD: Mapping[Product, tuple[float, float]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SiteRoom:
    """One site's room (kW, see the module doc). ``held``: per product the site reports
    holding, (up, down), products holding nothing left out. ``energy_up_kw`` /
    ``energy_down_kw``: battery-power caps of energy dispatch after a recent clamp (the
    battery limits when there was none)."""

    site_id: str
    excluded: Exclusion | None = None
    reference_kw: float = 0.0
    up_kw: float = 0.0
    down_kw: float = 0.0
    held: Mapping[Product, tuple[float, float]] = field(default_factory=lambda: _NOTHING_HELD)
    energy_up_kw: float = 0.0
    energy_down_kw: float = 0.0
    derated: bool = False
    clamp: str | None = None


@dataclass(frozen=True, slots=True)
class Availability:
    """What one product may take at a site: ``up_kw`` more discharge, ``down_kw`` more
    charge (both >= 0; battery powers for energy dispatch, deltas for every other product)."""

    site_id: str
    up_kw: float
    down_kw: float
    excluded: Exclusion | None = None
    derated: bool = False


def use_of(product: Product, share_kw: float, reference_kw: float = 0.0) -> tuple[float, float]:
    """(up, down) kW a share of ``product`` takes of a site's room (>= 0 each)."""
    direction = DIRECTION[product]
    if direction is Direction.BOTH:
        return share_kw, share_kw
    if direction is Direction.UP:
        return share_kw, 0.0
    if direction is Direction.DOWN:
        return 0.0, share_kw
    if direction is Direction.ABSOLUTE:  # a battery power that moves the baseline
        share_kw -= reference_kw
    return (share_kw, 0.0) if share_kw >= 0 else (0.0, -share_kw)


def held_of(tel: Reading) -> Mapping[Product, tuple[float, float]]:
    """What the site reports holding per product, (up, down) kW; only products holding some."""
    held: dict[Product, tuple[float, float]] = {}
    if tel.armed_fcr_n_kw > 0:
        held[Product.FCR_N] = (tel.armed_fcr_n_kw, tel.armed_fcr_n_kw)
    if tel.armed_fcr_d_up_kw > 0:
        held[Product.FCR_D_UP] = (tel.armed_fcr_d_up_kw, 0.0)
    if tel.armed_fcr_d_down_kw > 0:
        held[Product.FCR_D_DOWN] = (0.0, tel.armed_fcr_d_down_kw)
    if tel.armed_ffr_kw > 0:
        held[Product.FFR] = (tel.armed_ffr_kw, 0.0)
    if tel.order_afrr_kw != 0:
        held[Product.AFRR] = use_of(Product.AFRR, tel.order_afrr_kw)
    if tel.order_mfrr_kw != 0:
        held[Product.MFRR] = use_of(Product.MFRR, tel.order_mfrr_kw)
    return held or _NOTHING_HELD


def site_room(status: SiteStatus, now: int, config: AllocatorConfig) -> SiteRoom:
    """The room of one site (see the module doc)."""
    tel = status.telemetry
    site_id = status.site_id
    if tel is None:
        return SiteRoom(site_id, Exclusion.NO_TELEMETRY)
    if now - tel.event_time > config.telemetry_max_age_s * MICROS_PER_S:
        return SiteRoom(site_id, Exclusion.OFFLINE)
    if tel.faulted or tel.mode is SiteMode.FAULT:
        return SiteRoom(site_id, Exclusion.FAULTED)
    ref = tel.battery_power_kw if tel.baseline_kw is None else tel.baseline_kw
    max_out, max_in = tel.max_discharge_kw, tel.max_charge_kw
    if status.limits is not None:
        max_out = min(max_out, status.limits.max_discharge_kw)
        max_in = min(max_in, status.limits.max_charge_kw)
    held = held_of(tel)
    held_up = held_down = 0.0
    for h_up, h_down in held.values():
        held_up += h_up
        held_down += h_down
    up = max(0.0, min(tel.headroom_up_kw + held_up, max_out - ref))
    down = max(0.0, min(tel.headroom_down_kw + held_down, max_in + ref))
    energy_up, energy_down, derated, clamp = max_out, max_in, False, None
    result = status.last_result
    if (
        result is not None
        and result.status in _DERATING
        and now - result.event_time <= config.clamp_window_s * MICROS_PER_S
    ):
        clamp = _clamp_words(result, now)
        achieved = result.measured_kw if result.measured_kw is not None else result.written_kw
        achieved = 0.0 if achieved is None else achieved
        asked = result.requested_kw if result.requested_kw is not None else achieved
        if asked > 0:
            energy_up, derated = min(energy_up, max(achieved, 0.0)), True
        elif asked < 0:
            energy_down, derated = min(energy_down, max(-achieved, 0.0)), True
    return SiteRoom(site_id, None, ref, up, down, held, energy_up, energy_down, derated, clamp)


def _clamp_words(result: CommandResult, now: int) -> str:
    """A recent CLAMPED/OVERRIDDEN result in words (why a site gave up share: the log)."""
    age = (now - result.event_time) / MICROS_PER_S
    cause = f" ({result.likely_cause})" if result.likely_cause else ""
    measured = "" if result.measured_kw is None else f", measured {result.measured_kw:.3f} kW"
    return f"{result.status}{cause} {age:.1f} s ago{measured}"


@dataclass(frozen=True, slots=True)
class ProductUse:
    """The shares the allocator gave one product (site -> kW, signed for orders, battery
    power for energy dispatch): what that product uses of each site's room besides what the
    telemetry shows."""

    product: Product
    shares: Mapping[str, float]


def used_by_others(
    room: SiteRoom, product: Product | None, others: Iterable[ProductUse]
) -> tuple[float, float]:
    """(up, down) kW the products other than ``product`` (None: every product) use at the
    room's site: per product the larger of what the site holds and the allocator's share
    (see the module doc)."""
    up = down = 0.0
    seen: set[Product] = set() if product is None else {product}
    site_id, ref = room.site_id, room.reference_kw
    for other in others:
        if other.product in seen:
            continue
        seen.add(other.product)
        held_up, held_down = room.held.get(other.product, (0.0, 0.0))
        share = other.shares.get(site_id)
        if share is not None:
            s_up, s_down = use_of(other.product, share, ref)
            held_up, held_down = max(held_up, s_up), max(held_down, s_down)
        up += held_up
        down += held_down
    for held_product, (held_up, held_down) in room.held.items():
        if held_product not in seen:  # held at the site without a share here (e.g. restart)
            up += held_up
            down += held_down
    return up, down


def product_availability(
    room: SiteRoom, product: Product, others: Iterable[ProductUse] = ()
) -> Availability:
    """What ``product`` may take at the room's site with ``others`` in force."""
    if room.excluded is not None:
        return Availability(room.site_id, 0.0, 0.0, room.excluded)
    used_up, used_down = used_by_others(room, product, others)
    up = room.up_kw - used_up
    down = room.down_kw - used_down
    if DIRECTION[product] is Direction.ABSOLUTE:  # battery powers
        ref = room.reference_kw
        up, down = min(ref + up, room.energy_up_kw), min(down - ref, room.energy_down_kw)
        return Availability(room.site_id, max(up, 0.0), max(down, 0.0), None, room.derated)
    return Availability(room.site_id, max(up, 0.0), max(down, 0.0))


def site_availability(
    status: SiteStatus,
    now: int,
    config: AllocatorConfig,
    product: Product = Product.NONE,
    others: Iterable[ProductUse] = (),
) -> Availability:
    """``product_availability`` of one site's status (energy dispatch unless ``product``)."""
    return product_availability(site_room(status, now, config), product, others)
