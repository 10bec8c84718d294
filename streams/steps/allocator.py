"""Allocator: a fleet target per product -> per-site shares -> SiteSetpoints + shortfall.

Reserves and orders are split as deltas on top of each site's baseline, energy dispatch as
absolute battery powers (``steps.allocation`` for the requests):

- ARM_RESERVE (FCR-N, FCR-D up, FCR-D down, FFR): per site an ARM_RESERVE of its capacity
  share with the request's droop band; a site whose share goes to 0 is DISARMed;
- ORDER (aFRR, mFRR): per site an ORDER whose change against its baseline is its share; the
  shares sum to the requested change against the fleet's baseline; a site whose share goes
  to 0 gets ORDER 0 (an order of 0 ends it);
- SET_POWER (energy dispatch, FleetSetpoint): per site an absolute SET_POWER, as before.

Several products are in force at once (``steps.fleet_allocations``: one allocation per
slot, a new request replacing its slot's earlier one). Each product's shares come out of what the
others leave at each site (``availability.product_availability``: room in the product's
direction(s) minus the others' use), so the full activations of all products together fit
every site's room, and a site's own share of a product counts as available to that product.

The split (``split_proportional``): sites in ``site_id`` order; capacity per site is what
the product may take there (FCR-N: the smaller direction; an order or an energy target: the
direction of its sign). In integer units of ``resolution_kw``: the target
``T = floor(|target| / res)`` and capacities ``c_i = floor(cap_i / res)``. If ``T >= sum(c)``
every site gets ``c_i``; else site i gets ``floor(T * c_i / C)`` and the remaining
``T - sum`` units go, one each, to the sites with the largest remainders ``T * c_i mod C``
(ties: lower site_id first). Integer arithmetic: exact, deterministic, independent of the
input order, never above a site's capacity.

Shortfall: ``shortfall_kw = target_kw - allocated_kw`` (signed like the target), where
``allocated_kw = sum(units) / scale`` is exact; the per-site floats sum to it within
``ALLOCATION_EPSILON_KW``.

Sticky: a split is redone only when the site book changed in a way it cannot absorb
(``reallocation_needed``), per product; then every site keeps its share as far as it still
can hold it, and only what sites gave up (a load spike, an SoC or power limit, a clamp or an
override the bridge reports, a site gone offline or faulted) and any shortfall moves, to the
sites with capacity left beyond their shares, by that capacity (``split_sticky``: the same
integer largest-remainder rule). Only the sites whose share changed get a setpoint
(``reallocate``: the next revision), sites that left the split get 0 (DISARM, ORDER 0,
SET_POWER 0), and the allocation names each site that gave up share and why (``moved``, in
its report: the leader's log line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from contract.enums import CommandKind
from contract.records import (
    FleetSetpoint,
    MarketActivation,
    ReserveArm,
    ReserveAssignment,
    SiteSetpoint,
)
from streams.steps.allocation import (
    Allocation,
    AllocationRequest,
    activation_request,
    fleet_setpoint_request,
    reserve_request,
)
from streams.steps.availability import (
    DIRECTION,
    AllocatorConfig,
    Direction,
    Exclusion,
    ProductUse,
    SiteRoom,
    SiteStatus,
    product_availability,
    site_room,
)
from streams.steps.ids import uuid5_text

__all__ = [
    "ALLOCATION_EPSILON_KW",
    "SHORTFALL_RECOVERY_FRACTION",
    "Allocation",
    "AllocationRequest",
    "allocate",
    "allocate_activation",
    "allocate_fleet_setpoint",
    "allocate_reserve",
    "allocate_rooms",
    "needed",
    "reallocate",
    "reallocate_rooms",
    "reallocation_needed",
    "rooms_of",
    "split_proportional",
    "split_sticky",
]

#: Tolerance of ``fsum(per-site kW) + shortfall_kw == target_kw`` (1 mW; floats, not units).
ALLOCATION_EPSILON_KW = 1e-6
#: Of |target|: extra capacity worth a re-split of a short allocation.
SHORTFALL_RECOVERY_FRACTION = 0.02

_CAP_TOLERANCE_UNITS = 1e-7


def _units(kw: float, scale: int) -> int:
    """Whole units of ``|kw|`` (rounded down, float noise forgiven)."""
    return int(abs(kw) * scale + _CAP_TOLERANCE_UNITS)


def split_proportional(
    target_kw: float, caps_kw: Sequence[float], config: AllocatorConfig
) -> tuple[list[int], int]:
    """Split ``|target_kw|`` over ``caps_kw`` (>= 0, in a fixed order) in integer units of
    ``config.resolution_kw``. Returns (units per site, total units); see the module doc."""
    scale = config.scale
    caps = [_units(c, scale) if c > 0 else 0 for c in caps_kw]
    return _split_units(_units(target_kw, scale), caps)


def split_sticky(
    target_kw: float,
    caps_kw: Sequence[float],
    kept_kw: Sequence[float],
    config: AllocatorConfig,
) -> tuple[list[int], int]:
    """Re-split ``|target_kw|`` keeping each site's earlier share ``kept_kw`` (signed like the
    target; the opposite sign counts as none) as far as its capacity ``caps_kw`` still holds
    it; only the rest (what sites gave up, and any shortfall) is split over the capacity the
    sites have left beyond their kept shares (:func:`split_proportional`'s rule). Kept
    shares above the target (it cannot happen for the same request) are split down
    proportionally instead. Returns (units per site, total units)."""
    scale = config.scale
    sign = -1.0 if target_kw < 0 else 1.0
    total = _units(target_kw, scale)
    caps = [_units(c, scale) if c > 0 else 0 for c in caps_kw]
    kept = [
        min(_units(k, scale), cap) if sign * k > 0 else 0
        for k, cap in zip(kept_kw, caps, strict=True)
    ]
    kept_sum = sum(kept)
    if kept_sum >= total:
        return _split_units(total, kept)
    spare = [cap - k for cap, k in zip(caps, kept, strict=True)]
    more, added = _split_units(total - kept_sum, spare)
    return [k + m for k, m in zip(kept, more, strict=True)], kept_sum + added


def _split_units(total: int, caps: list[int]) -> tuple[list[int], int]:
    """``total`` units over ``caps`` (units >= 0): the module doc's largest-remainder rule."""
    cap_sum = sum(caps)
    if total >= cap_sum:
        return caps, cap_sum
    if total == 0:
        return [0] * len(caps), 0
    units = [total * c // cap_sum for c in caps]
    left = total - sum(units)
    if left:
        remainders = [(-(total * c % cap_sum), i) for i, c in enumerate(caps)]
        remainders.sort()
        for _, i in remainders[:left]:
            units[i] += 1
    return units, total


def rooms_of(statuses: Iterable[SiteStatus], now: int, config: AllocatorConfig) -> list[SiteRoom]:
    """Every site's room, sorted by site_id (the last status of a site wins)."""
    by_site = {s.site_id: s for s in statuses}
    return [site_room(by_site[site_id], now, config) for site_id in sorted(by_site)]


def _wants_up(request: AllocationRequest) -> bool | None:
    """True: the request draws on up room, False: down, None: both (FCR-N)."""
    direction = DIRECTION[request.slot]
    if direction is Direction.BOTH:
        return None
    if direction is Direction.UP:
        return True
    if direction is Direction.DOWN:
        return False
    return request.target_kw >= 0  # signed and absolute requests: the sign's direction


def _capacities(
    request: AllocationRequest, rooms: Sequence[SiteRoom], others: Sequence[ProductUse]
) -> tuple[list[str], list[float], dict[str, Exclusion], list[str]]:
    """(eligible sites, their capacity for the request, excluded sites, derated sites)."""
    eligible: list[str] = []
    caps: list[float] = []
    excluded: dict[str, Exclusion] = {}
    derated: list[str] = []
    up = _wants_up(request)
    slot = request.slot
    for room in rooms:
        if room.excluded is not None:
            excluded[room.site_id] = room.excluded
            continue
        av = product_availability(room, slot, others)
        if av.derated:
            derated.append(room.site_id)
        eligible.append(room.site_id)
        caps.append(min(av.up_kw, av.down_kw) if up is None else av.up_kw if up else av.down_kw)
    return eligible, caps, excluded, derated


def _setpoints(
    request: AllocationRequest, revision: int, shares: Iterable[tuple[str, float]], now: int
) -> tuple[SiteSetpoint, ...]:
    """One setpoint per (site, kW): ARM_RESERVE (DISARM_RESERVE at 0), ORDER or SET_POWER.
    Built directly (10,000 at a time): ids are ``derived_id("site-setpoint", source,
    revision, site)`` and ``derived_id("site-setpoint-event", setpoint_id)``."""
    prefix = f"site-setpoint|{request.source_id}|{revision}|"
    kind, source, valid_until = request.kind, request.source_id, request.valid_until
    arm = request.reserve
    out = []
    for site_id, kw in shares:
        setpoint_id = uuid5_text(prefix + site_id)
        sp_kind, power, reserve, product = kind, None, None, None
        if kind is CommandKind.SET_POWER:
            power = kw
        elif kind is CommandKind.ORDER:
            power, product = kw, request.product
        elif kw > 0:
            assert arm is not None  # noqa: S101  # built with one for ARM_RESERVE
            reserve = ReserveArm(
                arm.product, kw, arm.f_start_hz, arm.f_full_hz, arm.deadband_hz, arm.symmetric
            )
        else:  # an arm's share taken back
            sp_kind, product = CommandKind.DISARM_RESERVE, request.product
        out.append(
            SiteSetpoint(
                event_id=uuid5_text("site-setpoint-event|" + setpoint_id),
                event_time=now,
                site_id=site_id,
                setpoint_id=setpoint_id,
                source_id=source,
                kind=sp_kind,
                power_kw=power,
                reserve=reserve,
                valid_until=valid_until,
                product=product,
            )
        )
    return tuple(out)


def allocate(
    request: AllocationRequest,
    statuses: Iterable[SiteStatus],
    now: int,
    config: AllocatorConfig,
    *,
    revision: int = 0,
    previous: Mapping[str, float] | None = None,
    changed_only: bool = True,
    others: Sequence[ProductUse] = (),
) -> Allocation:
    """Split ``request`` over ``statuses`` with ``others`` (the other products' shares) in
    force; see :func:`allocate_rooms`."""
    return allocate_rooms(
        request,
        rooms_of(statuses, now, config),
        now,
        config,
        revision=revision,
        previous=previous,
        changed_only=changed_only,
        others=others,
    )


def allocate_rooms(
    request: AllocationRequest,
    rooms: Sequence[SiteRoom],
    now: int,
    config: AllocatorConfig,
    *,
    revision: int = 0,
    previous: Mapping[str, float] | None = None,
    changed_only: bool = True,
    others: Sequence[ProductUse] = (),
    sticky: bool = False,
) -> Allocation:
    """Split ``request`` over the sites' ``rooms`` (sorted by site_id); with ``sticky`` and
    ``previous`` (a re-split of the same request) the sites keep their earlier shares as far
    as they still can hold them and only the rest moves (:func:`split_sticky`), else the
    whole target is split afresh (:func:`split_proportional`). ``Allocation.moved`` names
    each site that gave up share, and why.

    Setpoints: without ``previous``, one per site with a share (energy dispatch: one per
    eligible site, 0 included: it is an absolute power). With ``previous`` (site -> kW of
    the same slot), a site of ``previous`` with a non-zero share that has none now (no
    longer eligible, or 0) is sent 0 (its share is taken back, not left to expire); with
    ``changed_only`` (a re-split of the same request) only sites whose share differs from
    ``previous`` get a setpoint, else (a new request replacing the slot's earlier one) every
    site with a share. An expired request allocates nothing."""
    eligible, caps, excluded, derated = _capacities(request, rooms, others)
    if request.valid_until <= now:
        caps = [0.0] * len(caps)
    if sticky and previous is not None:
        kept = [previous.get(site_id, 0.0) for site_id in eligible]
        units, total = split_sticky(request.target_kw, caps, kept, config)
    else:
        units, total = split_proportional(request.target_kw, caps, config)
    scale = config.scale
    sign = -1.0 if request.target_kw < 0 else 1.0
    per_site = {site_id: sign * u / scale for site_id, u in zip(eligible, units, strict=True)}
    allocated = sign * total / scale
    moved: dict[str, str] = {}
    if sticky and previous is not None:
        capacity = dict(zip(eligible, caps, strict=True))
        by_site = {room.site_id: room for room in rooms}
        for site_id, kw in sorted(previous.items()):
            now_kw = per_site.get(site_id, 0.0)
            if abs(now_kw) < abs(kw) and request.valid_until > now:
                moved[site_id] = _why_moved(
                    by_site.get(site_id), request, abs(kw), capacity.get(site_id)
                )
    setpoints: tuple[SiteSetpoint, ...] = ()
    if request.valid_until > now:
        absolute = request.kind is CommandKind.SET_POWER
        before = previous or {}
        if previous is not None and changed_only:
            # a delta product's site without a share before held 0; an absolute power has no
            # such default (a new site is told its power, 0 included)
            none = None if absolute else 0.0
            send = [(s, kw) for s, kw in per_site.items() if before.get(s, none) != kw]
        else:
            send = [(s, kw) for s, kw in per_site.items() if kw != 0.0 or absolute]
        # A site that held a share and has none now is told 0: otherwise it keeps its old share
        # until valid_until while the others already cover it, and the fleet over-delivers
        # (1.49x capacity seen in a demo run).
        sending = {s for s, _ in send}
        dropped = [
            (s, 0.0)
            for s, kw in before.items()
            if kw != 0.0 and per_site.get(s, 0.0) == 0.0 and s not in sending
        ]
        setpoints = _setpoints(request, revision, sorted(send + dropped), now)
    return Allocation(
        request=request,
        revision=revision,
        allocated_kw=allocated,
        shortfall_kw=request.target_kw - allocated,
        per_site_kw=MappingProxyType(per_site),
        excluded=MappingProxyType(excluded),
        derated=tuple(derated),
        setpoints=setpoints,
        moved=MappingProxyType(moved),
    )


def _why_moved(
    room: SiteRoom | None, request: AllocationRequest, share_kw: float, capacity: float | None
) -> str:
    """Why a site gave up (part of) its ``share_kw`` of ``request``: for the log."""
    if room is None:
        return "no longer in the site book"
    if room.excluded is not None:
        return f"excluded: {room.excluded}"
    if capacity is None or capacity >= share_kw:
        return "the split moved (a new request or a re-split)"
    why = f"{request.slot} may take {capacity:.3f} kW there, its share was {share_kw:.3f} kW"
    held = room.held.get(request.slot)
    if held is not None:
        why += f"; it reports holding {max(held):.3f} kW"
    if room.clamp is not None:
        why += f"; {room.clamp}"
    return why


def reallocate(
    previous: Allocation,
    statuses: Iterable[SiteStatus],
    now: int,
    config: AllocatorConfig,
    others: Sequence[ProductUse] = (),
) -> Allocation:
    """Re-split the same request after sites dropped, faulted, lost headroom or got clamped;
    setpoints only for sites whose share changed (new ids: the revision is incremented)."""
    return reallocate_rooms(previous, rooms_of(statuses, now, config), now, config, others)


def reallocate_rooms(
    previous: Allocation,
    rooms: Sequence[SiteRoom],
    now: int,
    config: AllocatorConfig,
    others: Sequence[ProductUse],
) -> Allocation:
    return allocate_rooms(
        previous.request,
        rooms,
        now,
        config,
        revision=previous.revision + 1,
        previous=previous.per_site_kw,
        others=others,
        sticky=True,
    )


def reallocation_needed(
    previous: Allocation,
    statuses: Iterable[SiteStatus],
    now: int,
    config: AllocatorConfig,
    others: Sequence[ProductUse] = (),
) -> bool:
    """Whether the site book changed in a way the current split cannot absorb; see
    :func:`needed` (on the rooms)."""
    return needed(previous, rooms_of(statuses, now, config), config, others)


def needed(
    previous: Allocation,
    rooms: Sequence[SiteRoom],
    config: AllocatorConfig,
    others: Sequence[ProductUse],
) -> bool:
    """Telemetry changes every site's headroom a little every second; re-splitting on each
    change would send every site a new share each time (a 60-site demo sent 4,002 reserve
    commands in four minutes). The split is sticky: it is redone only when
    - a site holding a share left it (excluded: offline, faulted, no telemetry; or gone), or
    - a site can no longer hold its share (what the product may take there, with the other
      products in force, is below it by more than one resolution step: a load spike, an SoC
      or power limit, a clamp, another product's larger share), or
    - the split is short of the target and the eligible sites can now serve at least
      ``SHORTFALL_RECOVERY_FRACTION`` of the target (and one resolution step) more.
    """
    request = previous.request
    shares = previous.per_site_kw
    tolerance = config.resolution_kw
    capacity_total = 0.0
    seen: set[str] = set()
    eligible, caps, excluded, _ = _capacities(request, rooms, others)
    for site_id in excluded:
        seen.add(site_id)
        if shares.get(site_id, 0.0) != 0.0:
            return True
    for site_id, capacity in zip(eligible, caps, strict=True):
        seen.add(site_id)
        if capacity < abs(shares.get(site_id, 0.0)) - tolerance:
            return True
        capacity_total += capacity
    if any(kw != 0.0 and s not in seen for s, kw in shares.items()):
        return True
    if abs(previous.shortfall_kw) <= tolerance:
        return False
    wanted = max(tolerance, SHORTFALL_RECOVERY_FRACTION * abs(request.target_kw))
    return capacity_total - abs(previous.allocated_kw) >= wanted


def allocate_fleet_setpoint(
    sp: FleetSetpoint, statuses: Iterable[SiteStatus], now: int, config: AllocatorConfig
) -> Allocation:
    return allocate(fleet_setpoint_request(sp), statuses, now, config)


def allocate_activation(
    act: MarketActivation, statuses: Iterable[SiteStatus], now: int, config: AllocatorConfig
) -> Allocation:
    return allocate(activation_request(act, config.order_margin), statuses, now, config)


def allocate_reserve(
    asg: ReserveAssignment, statuses: Iterable[SiteStatus], now: int, config: AllocatorConfig
) -> Allocation | None:
    """ARM_RESERVE setpoints; None for aFRR/mFRR/NONE capacity (it is activation-driven)."""
    request = reserve_request(asg)
    return None if request is None else allocate(request, statuses, now, config)
