"""Hypothesis properties of the allocator with several products at once.

Random homes (a baseline or none, limits, reserves and orders already held, headroom what is
left of the limits, some offline or faulted) and random sequences of requests for FCR-N,
FCR-D up/down, FFR and aFRR/mFRR orders, then the homes' telemetry changing and the timer's
re-split. Properties, per allocation: no share exceeds what its product may take at the
site with the other products in force; the shares sum to the target exactly as the split
does (or the shortfall says how much is missing, and only when capacity ran out); and per
site and direction the full activations of all products together (each product's share, or
what the site still holds of it if more) fit the site's room, unless what the site already
held did not fit it (then the allocator adds nothing to it).

Epsilon: ``ALLOCATION_EPSILON_KW`` (floats of integer units); the re-split's tolerance is one
resolution step per product (``reallocation_needed`` keeps a share within one step).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.enums import CommandKind, Product, SiteMode
from contract.records import ReserveArm, SiteTelemetry
from streams.steps.allocation import Allocation, AllocationRequest
from streams.steps.allocator import (
    ALLOCATION_EPSILON_KW,
    rooms_of,
)
from streams.steps.availability import (
    AllocatorConfig,
    SiteRoom,
    SiteStatus,
    product_availability,
    use_of,
)
from streams.steps.fleet_allocations import (
    FleetAllocations,
    apply_request,
    committed,
    refresh,
)

S = 1_000_000
NOW = 1_700_000_000 * S
CONFIG = AllocatorConfig()
EPS = ALLOCATION_EPSILON_KW
ARMED = [Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN, Product.FFR]
ORDERS = [Product.AFRR, Product.MFRR]
BANDS = {
    Product.FCR_N: (50.0, 49.9),
    Product.FCR_D_UP: (49.9, 49.5),
    Product.FCR_D_DOWN: (50.1, 50.5),
    Product.FFR: (49.7, 49.7),
}


@st.composite
def home(draw: st.DrawFn, i: int) -> SiteStatus:
    limit = draw(st.sampled_from([3.0, 5.0, 8.0, 12.0]))
    baseline = draw(st.none() | st.floats(-4.0, 6.0))
    ref = 0.0 if baseline is None else baseline
    held = {
        "fcr_n": draw(st.sampled_from([0.0, 0.0, 1.0, 2.5])),
        "fcrd_up": draw(st.sampled_from([0.0, 0.0, 1.5])),
        "fcrd_down": draw(st.sampled_from([0.0, 0.0, 2.0])),
        "ffr": draw(st.sampled_from([0.0, 0.0, 1.0])),
        "afrr": draw(st.sampled_from([0.0, 0.0, 1.0, -1.0])),
        "mfrr": draw(st.sampled_from([0.0, 0.0, 2.0, -0.5])),
    }
    held_up = held["fcr_n"] + held["fcrd_up"] + held["ffr"]
    held_up += max(held["afrr"], 0.0) + max(held["mfrr"], 0.0)
    held_down = held["fcr_n"] + held["fcrd_down"]
    held_down += max(-held["afrr"], 0.0) + max(-held["mfrr"], 0.0)
    # the edge's headroom: what is left of the limits, sometimes less (SoC, endurance)
    cut = draw(st.sampled_from([0.0, 0.0, 0.5, 3.0]))
    site = f"site-{i:02d}"
    telemetry = SiteTelemetry(
        event_id="00000000-0000-4000-8000-000000000000",
        event_time=NOW - draw(st.sampled_from([1, 1, 1, 30])) * S,
        site_id=site,
        oem="huawei",
        model="SUN2000",
        battery_power_kw=draw(st.floats(-5.0, 5.0)),
        soc_pct=50.0,
        grid_power_kw=0.0,
        pv_power_kw=0.0,
        load_kw=1.0,
        headroom_up_kw=max(0.0, limit - ref - held_up - cut),
        headroom_down_kw=max(0.0, limit + ref - held_down - cut),
        max_discharge_kw=limit,
        max_charge_kw=limit,
        mode=SiteMode.SELF_CONSUMPTION,
        faulted=draw(st.sampled_from([False] * 6 + [True])),
        baseline_kw=baseline,
        armed_fcr_n_kw=held["fcr_n"],
        armed_fcr_d_up_kw=held["fcrd_up"],
        armed_fcr_d_down_kw=held["fcrd_down"],
        armed_ffr_kw=held["ffr"],
        order_afrr_kw=held["afrr"],
        order_mfrr_kw=held["mfrr"],
    )
    return SiteStatus(site, telemetry)


@st.composite
def homes(draw: st.DrawFn) -> list[SiteStatus]:
    n = draw(st.integers(0, 16))
    return [draw(home(i)) for i in range(n)]


@st.composite
def request(draw: st.DrawFn, n: int) -> AllocationRequest:
    product = draw(st.sampled_from(ARMED + ORDERS))
    source = f"req-{n}"
    valid_until = NOW + 3600 * S
    if product in ORDERS:
        target = draw(st.floats(-60.0, 60.0) | st.just(0.0))
        return AllocationRequest(source, "fleet", CommandKind.ORDER, product, target, valid_until)
    f_start, f_full = BANDS[product]
    arm = ReserveArm(product, 0.0, f_start, f_full, 0.0, product is Product.FCR_N)
    target = draw(st.floats(0.0, 80.0))
    return AllocationRequest(
        source, "fleet", CommandKind.ARM_RESERVE, product, target, valid_until, arm
    )


@st.composite
def requests(draw: st.DrawFn) -> list[AllocationRequest]:
    return [draw(request(i)) for i in range(draw(st.integers(1, 6)))]


def _capacity(room: SiteRoom, alloc: Allocation, state: FleetAllocations) -> float:
    req = alloc.request
    av = product_availability(room, req.slot, state.uses(NOW, but=req.slot))
    if req.product is Product.FCR_N:
        return min(av.up_kw, av.down_kw)
    if req.product in (Product.FCR_D_UP, Product.FFR):
        return av.up_kw
    if req.product is Product.FCR_D_DOWN:
        return av.down_kw
    return av.up_kw if req.target_kw >= 0 else av.down_kw


def _check_split(
    alloc: Allocation, rooms: list[SiteRoom], before: FleetAllocations, tolerance: float
) -> None:
    target = alloc.request.target_kw
    assert abs(math.fsum(alloc.per_site_kw.values()) + alloc.shortfall_kw - target) <= EPS
    assert target * alloc.shortfall_kw >= -EPS * abs(target)  # never more than asked
    available = 0.0
    for room in rooms:
        if room.excluded is not None:
            assert room.site_id not in alloc.per_site_kw
            continue
        cap = _capacity(room, alloc, before)
        share = alloc.per_site_kw[room.site_id]
        assert 0.0 <= math.copysign(1.0, target) * share <= cap + tolerance
        available += cap
    if available >= abs(target):
        assert abs(alloc.shortfall_kw) <= CONFIG.resolution_kw * max(1, len(rooms)) + EPS
    else:
        assert abs(alloc.allocated_kw) <= available + EPS * max(1, len(rooms))


def _held(room: SiteRoom) -> tuple[float, float]:
    up = math.fsum(h[0] for h in room.held.values())
    down = math.fsum(h[1] for h in room.held.values())
    return up, down


def _check_stacking(state: FleetAllocations, rooms: list[SiteRoom], tolerance: float) -> None:
    for room in rooms:
        if room.excluded is not None:
            continue
        used_up, used_down = committed(state, room, NOW)
        held_up, held_down = _held(room)
        assert used_up <= max(room.up_kw, held_up) + tolerance
        assert used_down <= max(room.down_kw, held_down) + tolerance


@settings(max_examples=300, deadline=None)
@given(homes(), requests())
def test_every_products_shares_fit_its_availability_and_all_fit_together(
    statuses: list[SiteStatus], sequence: list[AllocationRequest]
) -> None:
    rooms = rooms_of(statuses, NOW, CONFIG)
    state = FleetAllocations()
    for req in sequence:
        before = state
        state, alloc = apply_request(state, req, statuses, NOW, CONFIG)
        _check_split(alloc, rooms, before, EPS)
        _check_stacking(state, rooms, EPS * len(ARMED + ORDERS))
        # what is sent is the share (ARM capacity, ORDER change), 0 where a share ended
        for sp in alloc.setpoints:
            share = alloc.per_site_kw.get(sp.site_id, 0.0)
            if sp.kind is CommandKind.ARM_RESERVE:
                assert sp.reserve is not None
                assert sp.reserve.capacity_kw == share > 0
            elif sp.kind is CommandKind.DISARM_RESERVE:
                assert share == 0.0
                assert sp.product is req.product
            else:
                assert sp.kind is CommandKind.ORDER
                assert sp.power_kw == share
                assert sp.product is req.product


@settings(max_examples=200, deadline=None)
@given(homes(), requests(), homes())
def test_the_re_split_after_the_homes_change_keeps_them(
    statuses: list[SiteStatus], sequence: list[AllocationRequest], later: list[SiteStatus]
) -> None:
    state = FleetAllocations()
    for req in sequence:
        state, _ = apply_request(state, req, statuses, NOW, CONFIG)
    before = state
    state, done = refresh(state, later, NOW, CONFIG)
    rooms = rooms_of(later, NOW, CONFIG)
    resplit = {a.request.slot for a in done}
    step = CONFIG.resolution_kw
    for slot, alloc in state.by_slot.items():
        if slot in resplit:
            assert alloc.revision == before.by_slot[slot].revision + 1
            # setpoints only where a share changed, 0 where one ended
            for sp in alloc.setpoints:
                old = before.by_slot[slot].per_site_kw.get(sp.site_id, 0.0)
                assert alloc.per_site_kw.get(sp.site_id, 0.0) != old
        else:
            assert alloc is before.by_slot[slot]
            # sticky: every share still within one step of what its product may take
            for room in rooms:
                share = abs(alloc.per_site_kw.get(room.site_id, 0.0))
                if room.excluded is not None:
                    assert share == 0.0
                else:
                    assert share <= _capacity(room, alloc, state) + step + EPS
    shares_only = FleetAllocations(state.by_slot)
    for room in rooms:  # the shares (not yet what the homes hold) fit together
        if room.excluded is not None:
            continue
        bare = SiteRoom(room.site_id, None, room.reference_kw, room.up_kw, room.down_kw)
        up, down = committed(shares_only, bare, NOW)
        held_up, held_down = _held(room)
        slack = step * len(state.by_slot) + EPS * 6
        assert up <= max(room.up_kw, held_up) + slack
        assert down <= max(room.down_kw, held_down) + slack


@settings(max_examples=200, deadline=None)
@given(homes(), st.sampled_from(ARMED + ORDERS), st.floats(-50.0, 50.0))
def test_use_of_a_share_is_what_the_split_drew_on(
    statuses: list[SiteStatus], product: Product, target: float
) -> None:
    """The room a share takes (``use_of``) is in the direction its capacity came from."""
    if product in ARMED:
        target = abs(target)
        f_start, f_full = BANDS[product]
        req = AllocationRequest(
            "r",
            "fleet",
            CommandKind.ARM_RESERVE,
            product,
            target,
            NOW + S,
            ReserveArm(product, 0.0, f_start, f_full),
        )
    else:
        req = AllocationRequest("r", "fleet", CommandKind.ORDER, product, target, NOW + S)
    _, alloc = apply_request(FleetAllocations(), req, statuses, NOW, CONFIG)
    for room in rooms_of(statuses, NOW, CONFIG):
        share = alloc.per_site_kw.get(room.site_id)
        if share is None:
            continue
        av = product_availability(room, product)
        up, down = use_of(product, share)
        assert up <= av.up_kw + EPS
        assert down <= av.down_kw + EPS
