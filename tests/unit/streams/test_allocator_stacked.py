"""Stacked products: each site's room for deltas on top of its baseline, shared by FCR-N,
FCR-D up/down, FFR and aFRR/mFRR orders; one allocation per product, sticky per product."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from contract.enums import CommandKind, CommandStatus, Product, SiteMode
from contract.errors import InvalidRecordError
from contract.records import CommandResult, ReserveArm, SiteTelemetry
from streams.steps.allocation import AllocationRequest
from streams.steps.allocator import (
    rooms_of,
)
from streams.steps.availability import (
    AllocatorConfig,
    ProductUse,
    SiteStatus,
    product_availability,
    site_room,
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
UUID = "00000000-0000-4000-8000-000000000000"


def tel(
    site: str = "a",
    *,
    up: float = 5.0,
    down: float = 5.0,
    power: float = 0.0,
    baseline: float | None = 0.0,
    max_kw: float = 10.0,
    fcr_n: float = 0.0,
    fcrd_up: float = 0.0,
    fcrd_down: float = 0.0,
    ffr: float = 0.0,
    afrr: float = 0.0,
    mfrr: float = 0.0,
    age_s: float = 1.0,
) -> SiteTelemetry:
    return SiteTelemetry(
        event_id=UUID,
        event_time=NOW - round(age_s * S),
        site_id=site,
        oem="sungrow",
        model="SH10RT",
        battery_power_kw=power,
        soc_pct=55.0,
        grid_power_kw=0.0,
        pv_power_kw=0.0,
        load_kw=1.0,
        headroom_up_kw=up,
        headroom_down_kw=down,
        max_discharge_kw=max_kw,
        max_charge_kw=max_kw,
        mode=SiteMode.SELF_CONSUMPTION,
        baseline_kw=baseline,
        armed_fcr_n_kw=fcr_n,
        armed_fcr_d_up_kw=fcrd_up,
        armed_fcr_d_down_kw=fcrd_down,
        armed_ffr_kw=ffr,
        order_afrr_kw=afrr,
        order_mfrr_kw=mfrr,
    )


# (telemetry, product, others, expected (up, down))
ROOMS: list[tuple[str, SiteTelemetry, Product, list[ProductUse], tuple[float, float]]] = [
    ("free headroom, nothing held", tel(up=5.0, baseline=2.0), Product.FCR_D_UP, [], (5.0, 5.0)),
    (
        "the product's own arm counts as available to it",
        tel(up=3.0, down=3.0, baseline=2.0, fcr_n=2.0),
        Product.FCR_N,
        [],
        (5.0, 5.0),
    ),
    (
        "another product's arm is taken off",
        tel(up=3.0, down=3.0, baseline=2.0, fcr_n=2.0),
        Product.FCR_D_UP,
        [],
        (3.0, 3.0),
    ),
    (
        "a share sent but not yet in the telemetry is taken off too",
        tel(up=5.0, down=5.0),
        Product.FCR_D_UP,
        [ProductUse(Product.FCR_N, {"a": 3.0})],
        (2.0, 2.0),
    ),
    (
        "a share smaller than what the site still holds: the held capacity counts",
        tel(up=3.0, down=3.0, fcr_n=2.0),
        Product.FCR_D_UP,
        [ProductUse(Product.FCR_N, {"a": 1.0})],
        (3.0, 3.0),
    ),
    (
        "over-committed: the limits around the baseline show it (headroom stops at 0)",
        tel(up=0.0, down=5.0, baseline=8.0, fcrd_up=4.0),
        Product.FCR_D_UP,
        [],
        (2.0, 5.0),
    ),
    (
        "an upward order uses up room only",
        tel(up=2.0, down=5.0, mfrr=3.0),
        Product.FCR_D_DOWN,
        [],
        (2.0, 5.0),
    ),
    (
        "energy dispatch is a battery power around the baseline",
        tel(up=5.0, down=5.0, baseline=2.0),
        Product.NONE,
        [],
        (7.0, 3.0),
    ),
    (
        "telemetry without a baseline: headroom is relative to the battery power",
        tel(up=4.0, down=6.0, power=3.0, baseline=None),
        Product.FCR_D_UP,
        [],
        (4.0, 6.0),
    ),
    (
        "the same, energy dispatch (as before stacked products)",
        tel(up=4.0, down=6.0, power=3.0, baseline=None),
        Product.NONE,
        [],
        (7.0, 3.0),
    ),
]


@pytest.mark.parametrize(
    ("label", "telemetry", "product", "others", "expected"), ROOMS, ids=[r[0] for r in ROOMS]
)
def test_product_availability(
    label: str,
    telemetry: SiteTelemetry,
    product: Product,
    others: list[ProductUse],
    expected: tuple[float, float],
) -> None:
    room = site_room(SiteStatus("a", telemetry), NOW, CONFIG)
    av = product_availability(room, product, others)
    assert (av.up_kw, av.down_kw) == pytest.approx(expected), label


def arm(
    product: Product, target_mw: float, source: str, valid_s: float = 3600.0
) -> AllocationRequest:
    bands = {
        Product.FCR_N: (50.0, 49.9),
        Product.FCR_D_UP: (49.9, 49.5),
        Product.FCR_D_DOWN: (50.1, 50.5),
        Product.FFR: (49.7, 49.7),
    }
    f_start, f_full = bands[product]
    return AllocationRequest(
        source_id=source,
        fleet_id="fleet",
        kind=CommandKind.ARM_RESERVE,
        product=product,
        target_kw=target_mw * 1000.0,
        valid_until=NOW + round(valid_s * S),
        reserve=ReserveArm(product, 0.0, f_start, f_full, 0.0, product is Product.FCR_N),
    )


def order(
    product: Product, target_mw: float, source: str, valid_s: float = 900.0
) -> AllocationRequest:
    return AllocationRequest(
        source_id=source,
        fleet_id="fleet",
        kind=CommandKind.ORDER,
        product=product,
        target_kw=target_mw * 1000.0,
        valid_until=NOW + round(valid_s * S),
    )


SITES = ("a", "b", "c")


def statuses(**per_site: SiteTelemetry) -> list[SiteStatus]:
    return [SiteStatus(s, per_site.get(s, tel(s))) for s in SITES]


def test_three_products_armed_on_the_same_homes_fit_together() -> None:
    book = statuses()
    state = FleetAllocations()
    state, fcrn = apply_request(state, arm(Product.FCR_N, 0.006, "n-1"), book, NOW, CONFIG)
    state, up = apply_request(state, arm(Product.FCR_D_UP, 0.012, "up-1"), book, NOW, CONFIG)
    state, down = apply_request(state, arm(Product.FCR_D_DOWN, 0.006, "down-1"), book, NOW, CONFIG)
    assert dict(fcrn.per_site_kw) == {"a": 2.0, "b": 2.0, "c": 2.0}
    # FCR-D up gets what FCR-N leaves upwards (5 - 2 per site): 9 kW of the 12 asked
    assert dict(up.per_site_kw) == {"a": 3.0, "b": 3.0, "c": 3.0}
    assert up.shortfall_kw == pytest.approx(3.0)
    assert dict(down.per_site_kw) == {"a": 2.0, "b": 2.0, "c": 2.0}
    kinds = {(sp.kind, sp.reserve.product if sp.reserve else None) for sp in up.setpoints}
    assert kinds == {(CommandKind.ARM_RESERVE, Product.FCR_D_UP)}
    for room in rooms_of(book, NOW, CONFIG):
        used_up, used_down = committed(state, room, NOW)
        assert (used_up, used_down) == (5.0, 4.0)
        assert used_up <= room.up_kw
        assert used_down <= room.down_kw
    assert list(state.by_slot) == [Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN]


def test_a_new_request_replaces_its_products_earlier_one_only() -> None:
    book = statuses()
    state = FleetAllocations()
    state, _ = apply_request(state, arm(Product.FCR_N, 0.003, "n-1"), book, NOW, CONFIG)
    state, first = apply_request(state, arm(Product.FCR_D_UP, 0.006, "up-1"), book, NOW, CONFIG)
    # a later FCR-D up assignment, valid longer, for less: every share is sent again (the new
    # validity), and a site whose share went to 0 is disarmed
    later = arm(Product.FCR_D_UP, 0.002, "up-2", valid_s=7200.0)
    # site b has become over-committed: its limits (1 kW) no longer hold FCR-N's 1 kW and more
    book_b_full = statuses(b=tel("b", up=0.0, down=5.0, fcr_n=1.0, fcrd_up=2.0, max_kw=1.0))
    state, second = apply_request(state, later, book_b_full, NOW + S, CONFIG)
    assert dict(first.per_site_kw) == {"a": 2.0, "b": 2.0, "c": 2.0}
    assert second.per_site_kw["b"] == 0.0
    by_site = {sp.site_id: sp for sp in second.setpoints}
    assert by_site["b"].kind is CommandKind.DISARM_RESERVE
    assert by_site["b"].product is Product.FCR_D_UP
    assert {by_site[s].kind for s in ("a", "c")} == {CommandKind.ARM_RESERVE}
    assert all(sp.valid_until == NOW + 7200 * S for sp in second.setpoints)
    assert state.by_slot[Product.FCR_N].request.source_id == "n-1"  # untouched
    assert state.by_slot[Product.FCR_D_UP].request.source_id == "up-2"


def test_an_order_and_its_end() -> None:
    book = statuses()
    state = FleetAllocations()
    state, start = apply_request(state, order(Product.MFRR, 0.003, "m-1"), book, NOW, CONFIG)
    assert [(sp.kind, sp.product, sp.power_kw) for sp in start.setpoints] == [
        (CommandKind.ORDER, Product.MFRR, 1.0)
    ] * 3
    state, end = apply_request(state, order(Product.MFRR, 0.0, "m-2"), book, NOW + S, CONFIG)
    assert [(sp.site_id, sp.kind, sp.power_kw) for sp in end.setpoints] == [
        (s, CommandKind.ORDER, 0.0) for s in SITES
    ]
    assert end.shortfall_kw == 0.0


def test_an_order_takes_what_the_armed_reserves_leave() -> None:
    book = statuses(a=tel("a", up=1.0, fcr_n=2.0, fcrd_up=2.0))  # room up 5, 4 of it armed
    state = FleetAllocations()
    state, mfrr = apply_request(state, order(Product.MFRR, 0.005, "m-1"), book, NOW, CONFIG)
    assert dict(mfrr.per_site_kw) == {"a": 0.454, "b": 2.273, "c": 2.273}
    assert math.fsum(mfrr.per_site_kw.values()) == pytest.approx(5.0)


def test_reserves_held_at_a_site_without_an_allocation_still_count() -> None:
    """After a restart the allocator has no state, but the sites report what they hold."""
    book = statuses(a=tel("a", up=2.0, fcrd_up=3.0))
    _, fcrn = apply_request(FleetAllocations(), arm(Product.FCR_N, 1.0, "n-1"), book, NOW, CONFIG)
    assert fcrn.per_site_kw["a"] == 2.0


def test_a_load_spike_moves_share_to_the_other_homes() -> None:
    """A sauna and an EV charger at site a: its baseline covers them (discharging 9 kW of
    its 10), the room for FCR-D up shrinks below its share; that product is re-split, FCR-D
    down is not. Sticky: site a keeps what it can still take (1 kW), only the 1 kW it gave
    up moves, to the others by the room they have left; the allocation says why."""
    book = statuses()
    state = FleetAllocations()
    state, _ = apply_request(state, arm(Product.FCR_D_DOWN, 0.003, "down-1"), book, NOW, CONFIG)
    state, up = apply_request(state, arm(Product.FCR_D_UP, 0.006, "up-1"), book, NOW, CONFIG)
    assert dict(up.per_site_kw) == {"a": 2.0, "b": 2.0, "c": 2.0}
    armed = {s: tel(s, up=3.0, down=4.0, fcrd_up=2.0, fcrd_down=1.0) for s in SITES}
    same, none = refresh(state, [SiteStatus(s, t) for s, t in armed.items()], NOW + S, CONFIG)
    assert none == []  # applied as allocated: nothing to re-split
    armed["a"] = tel("a", up=0.0, down=10.0, baseline=9.0, fcrd_up=2.0, fcrd_down=1.0)
    after = [SiteStatus(s, t) for s, t in armed.items()]
    state, done = refresh(same, after, NOW + 2 * S, CONFIG)
    assert [a.request.product for a in done] == [Product.FCR_D_UP]
    resplit = done[0]
    assert dict(resplit.per_site_kw) == {"a": 1.0, "b": 2.5, "c": 2.5}  # a: 10 - 9 left
    assert set(resplit.moved) == {"a"}
    assert "FCR_D_UP may take 1.000 kW there, its share was 2.000 kW" in resplit.moved["a"]
    assert resplit.report()["gave_up_share"] == dict(resplit.moved)
    assert math.fsum(resplit.per_site_kw.values()) == pytest.approx(6.0)
    assert {sp.site_id for sp in resplit.setpoints} <= set(SITES)
    for room in rooms_of(after, NOW + 2 * S, CONFIG):  # the new shares fit (the old arm at
        # site a still shows in its telemetry until the edge applies the smaller one)
        shares = replace(room, held={})
        assert committed(state, shares, NOW + 2 * S)[0] <= room.up_kw + 1e-9


def test_a_clamped_arm_shows_in_the_telemetry_and_is_re_split() -> None:
    book = statuses()
    state, _ = apply_request(
        FleetAllocations(), arm(Product.FCR_D_UP, 0.009, "up-1"), book, NOW, CONFIG
    )
    # site b armed only 1.5 of its 3 kW (the edge clamped it: SoC limit) and has no headroom
    clamped = statuses(
        a=tel("a", up=2.0, fcrd_up=3.0),
        b=tel("b", up=0.0, fcrd_up=1.5),
        c=tel("c", up=2.0, fcrd_up=3.0),
    )
    state, done = refresh(state, clamped, NOW + S, CONFIG)
    assert len(done) == 1
    # b keeps what it holds, the 1.5 kW it gave up goes to a and c (only their shares move)
    assert dict(done[0].per_site_kw) == {"a": 3.75, "b": 1.5, "c": 3.75}
    assert {sp.site_id for sp in done[0].setpoints} == {"a", "b", "c"}
    assert "it reports holding 1.500 kW" in done[0].moved["b"]


def test_expired_allocations_are_dropped_and_free_their_room() -> None:
    book = statuses()
    config = AllocatorConfig(telemetry_max_age_s=60.0)  # the same telemetry 11 s later
    state = FleetAllocations()
    state, _ = apply_request(
        state, arm(Product.FCR_N, 0.015, "n-1", valid_s=10.0), book, NOW, config
    )
    state, up = apply_request(state, arm(Product.FCR_D_UP, 0.006, "up-1"), book, NOW, config)
    assert up.allocated_kw == 0.0  # FCR-N holds every site's up room
    state, done = refresh(state, book, NOW + 11 * S, config)
    assert Product.FCR_N not in state.by_slot
    assert [a.request.product for a in done] == [Product.FCR_D_UP]  # the shortfall is served
    assert done[0].allocated_kw == pytest.approx(6.0)


def test_fleet_allocations_round_trip_and_bad_data() -> None:
    book = statuses()
    state, _ = apply_request(FleetAllocations(), arm(Product.FCR_N, 0.003, "n"), book, NOW, CONFIG)
    state, _ = apply_request(state, order(Product.AFRR, -0.002, "o"), book, NOW, CONFIG)
    state, _ = apply_request(
        state, arm(Product.FCR_N, 0.003, "n-test", valid_s=60.0), book, NOW, CONFIG
    )
    again = FleetAllocations.from_dict(state.to_dict())
    assert again.to_dict() == state.to_dict()
    assert list(again.by_slot) == [Product.FCR_N, Product.AFRR]
    assert list(again.underneath) == [Product.FCR_N]
    stored = state.to_dict()["by_slot"]
    with pytest.raises(InvalidRecordError):
        FleetAllocations.from_dict({"by_slot": {"FCR_D_UP": stored["FCR_N"]}})
    with pytest.raises(InvalidRecordError):
        FleetAllocations.from_dict({"by_slot": {"FCR_N": "armed"}})
    with pytest.raises(InvalidRecordError):
        FleetAllocations.from_dict({"by_slot": {}, "underneath": {"FCR_N": stored["FCR_N"]}})


def test_a_test_activation_over_an_assignment_gives_the_assignment_back_when_it_ends() -> None:
    """The day's FCR-D up assignment (1 h), then a 60 s FCR-D up test activation on the same
    homes: the test replaces the arm while it runs; when it ends, the assignment is armed
    again (new setpoint ids: the edge applies a command id once). An order has nothing
    underneath it."""
    book = statuses()
    config = AllocatorConfig(telemetry_max_age_s=600.0)
    state = FleetAllocations()
    state, day = apply_request(state, arm(Product.FCR_D_UP, 0.006, "day"), book, NOW, config)
    test = arm(Product.FCR_D_UP, 0.009, "test", valid_s=60.0)
    state, during = apply_request(state, test, book, NOW + S, config)
    assert dict(during.per_site_kw) == {"a": 3.0, "b": 3.0, "c": 3.0}
    assert state.underneath[Product.FCR_D_UP] is day
    state, none = refresh(state, book, NOW + 30 * S, config)
    assert none == []
    state, (back,) = refresh(state, book, NOW + 61 * S, config)
    assert back.request == day.request
    assert back.revision == day.revision + 1
    assert dict(back.per_site_kw) == dict(day.per_site_kw)
    assert {sp.setpoint_id for sp in back.setpoints}.isdisjoint(
        {sp.setpoint_id for sp in day.setpoints}
    )
    assert all(sp.kind is CommandKind.ARM_RESERVE for sp in back.setpoints)
    assert Product.FCR_D_UP not in state.underneath
    state, _ = apply_request(state, order(Product.MFRR, 0.003, "m-1"), book, NOW, config)
    state, _ = apply_request(
        state, order(Product.MFRR, 0.001, "m-2", valid_s=10.0), book, NOW, config
    )
    assert Product.MFRR not in state.underneath
    state, _ = refresh(state, book, NOW + 11 * S, config)
    assert Product.MFRR not in state.by_slot


@pytest.mark.parametrize(
    ("kind", "product", "target", "with_reserve"),
    [
        (CommandKind.ORDER, Product.FCR_N, 1.0, False),
        (CommandKind.ARM_RESERVE, Product.AFRR, 1.0, True),
        (CommandKind.DISARM_RESERVE, Product.FCR_N, 0.0, False),
    ],
)
def test_requests_that_do_not_fit_their_kind_are_typed_errors(
    kind: CommandKind, product: Product, target: float, with_reserve: bool
) -> None:
    reserve = ReserveArm(product, 0.0, 50.0, 49.9) if with_reserve else None
    with pytest.raises(InvalidRecordError):
        AllocationRequest("s", "f", kind, product, target, NOW, reserve)


def test_an_overriding_home_gives_up_its_order_share_and_the_others_take_it() -> None:
    """Site b's inverter overrides: the bridge reports it holds nothing of its 1 kW mFRR
    order and has no headroom up (its delivery ceiling); the order is re-split: a and c
    keep their shares and take b's, b gets ORDER 0, and the allocation names b and why
    (with the OVERRIDDEN result the leader has)."""
    state, first = apply_request(
        FleetAllocations(), order(Product.MFRR, 0.003, "m-1"), statuses(), NOW, CONFIG
    )
    assert dict(first.per_site_kw) == {"a": 1.0, "b": 1.0, "c": 1.0}
    held = {s: tel(s, up=4.0, mfrr=1.0) for s in SITES}
    same, none = refresh(state, [SiteStatus(s, t) for s, t in held.items()], NOW + S, CONFIG)
    assert none == []
    held["b"] = tel("b", up=0.0, mfrr=0.0)  # the bridge's ceiling: 0 kW beyond the baseline
    overridden = CommandResult(
        event_id=UUID,
        event_time=NOW,
        site_id="b",
        command_id="cmd-b",
        status=CommandStatus.OVERRIDDEN,
        requested_kw=1.0,
        written_kw=1.0,
        measured_kw=0.0,
        likely_cause="UNKNOWN",
    )
    book = [SiteStatus(s, t, overridden if s == "b" else None) for s, t in held.items()]
    state, done = refresh(same, book, NOW + 2 * S, CONFIG)
    (resplit,) = done
    assert dict(resplit.per_site_kw) == {"a": 1.5, "b": 0.0, "c": 1.5}
    assert resplit.shortfall_kw == 0.0
    assert resplit.revision == first.revision + 1
    assert {(sp.site_id, sp.power_kw) for sp in resplit.setpoints} == {
        ("a", 1.5),
        ("b", 0.0),
        ("c", 1.5),
    }
    assert set(resplit.moved) == {"b"}
    assert "MFRR may take 0.000 kW there, its share was 1.000 kW" in resplit.moved["b"]
    assert "OVERRIDDEN (UNKNOWN) 2.0 s ago" in resplit.moved["b"]
    # the next refresh with the same book leaves the split alone (sticky)
    _, again = refresh(state, book, NOW + 3 * S, CONFIG)
    assert again == []
