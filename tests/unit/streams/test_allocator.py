"""Allocator: availability rules, exact proportional split, shortfall and re-allocation."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.enums import ActivationKind, CommandKind, CommandStatus, Product, SiteMode
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.records import (
    CommandResult,
    FleetSetpoint,
    MarketActivation,
    ReserveArm,
    ReserveAssignment,
    SiteTelemetry,
)
from streams.steps.allocator import (
    Allocation,
    AllocationRequest,
    allocate_activation,
    allocate_fleet_setpoint,
    allocate_reserve,
    reallocate,
    reallocation_needed,
    split_proportional,
)
from streams.steps.availability import (
    AllocatorConfig,
    Exclusion,
    SiteStatus,
    site_availability,
)
from streams.steps.setpoint_filter import SiteLimits

S = 1_000_000
NOW = 1_700_000_000 * S
CONFIG = AllocatorConfig(telemetry_max_age_s=10.0, clamp_window_s=60.0)
UUID = "00000000-0000-4000-8000-000000000000"


def tel(
    site: str,
    *,
    up: float = 5.0,
    down: float = 5.0,
    power: float = 0.0,
    age_s: float = 1.0,
    faulted: bool = False,
    mode: SiteMode = SiteMode.REMOTE,
    max_dis: float = 10.0,
    max_ch: float = 10.0,
    baseline: float | None = None,
    fcr_n: float = 0.0,
    fcrd_up: float = 0.0,
    fcrd_down: float = 0.0,
    mfrr: float = 0.0,
) -> SiteTelemetry:
    return SiteTelemetry(
        event_id=UUID,
        event_time=NOW - round(age_s * S),
        site_id=site,
        oem="huawei",
        model="SUN2000",
        battery_power_kw=power,
        soc_pct=50.0,
        grid_power_kw=0.0,
        pv_power_kw=0.0,
        load_kw=1.0,
        headroom_up_kw=up,
        headroom_down_kw=down,
        max_discharge_kw=max_dis,
        max_charge_kw=max_ch,
        mode=mode,
        faulted=faulted,
        baseline_kw=baseline,
        armed_fcr_n_kw=fcr_n,
        armed_fcr_d_up_kw=fcrd_up,
        armed_fcr_d_down_kw=fcrd_down,
        order_mfrr_kw=mfrr,
    )


def result(status: CommandStatus, requested: float, measured: float, age_s: float) -> CommandResult:
    return CommandResult(
        event_id=UUID,
        event_time=NOW - round(age_s * S),
        site_id="x",
        command_id="c",
        status=status,
        requested_kw=requested,
        measured_kw=measured,
    )


def fleet_sp(target_mw: float, sp_id: str = "fs-1") -> FleetSetpoint:
    return FleetSetpoint(
        event_id=UUID,
        event_time=NOW,
        fleet_id="fleet",
        setpoint_id=sp_id,
        target_mw=target_mw,
        valid_from=NOW,
        valid_until=NOW + 60 * S,
    )


# (status, expected (up_kw, down_kw, exclusion, derated))
AVAILABILITY: list[tuple[SiteStatus, tuple[float, float, Exclusion | None, bool]]] = [
    (SiteStatus("a", tel("a")), (5.0, 5.0, None, False)),
    (SiteStatus("a", tel("a", power=2.0, up=3.0, down=6.0)), (5.0, 4.0, None, False)),
    (SiteStatus("a", tel("a", power=-4.0, up=3.0, down=1.0)), (0.0, 5.0, None, False)),
    (SiteStatus("a", tel("a", up=15.0, max_dis=8.0)), (8.0, 5.0, None, False)),
    (SiteStatus("a", tel("a"), limits=SiteLimits(3.0, 2.0)), (3.0, 2.0, None, False)),
    (SiteStatus("a", None), (0.0, 0.0, Exclusion.NO_TELEMETRY, False)),
    (SiteStatus("a", tel("a", age_s=11.0)), (0.0, 0.0, Exclusion.OFFLINE, False)),
    (SiteStatus("a", tel("a", faulted=True)), (0.0, 0.0, Exclusion.FAULTED, False)),
    (SiteStatus("a", tel("a", mode=SiteMode.FAULT)), (0.0, 0.0, Exclusion.FAULTED, False)),
    (
        SiteStatus("a", tel("a"), result(CommandStatus.CLAMPED, 5.0, 2.5, 10.0)),
        (2.5, 5.0, None, True),
    ),
    (
        SiteStatus("a", tel("a"), result(CommandStatus.OVERRIDDEN, -5.0, 0.0, 10.0)),
        (5.0, 0.0, None, True),
    ),
    (
        SiteStatus("a", tel("a"), result(CommandStatus.CLAMPED, 5.0, 2.5, 61.0)),
        (5.0, 5.0, None, False),
    ),
    (
        SiteStatus("a", tel("a"), result(CommandStatus.APPLIED, 5.0, 2.5, 1.0)),
        (5.0, 5.0, None, False),
    ),
]


@pytest.mark.parametrize(("status", "expected"), AVAILABILITY)
def test_site_availability(
    status: SiteStatus, expected: tuple[float, float, Exclusion | None, bool]
) -> None:
    av = site_availability(status, NOW, CONFIG)
    assert (av.up_kw, av.down_kw, av.excluded, av.derated) == expected


# (target kW, caps kW, expected units at 1 W, expected total units)
SPLITS: list[tuple[float, list[float], list[int], int]] = [
    (9.0, [3.0, 6.0, 9.0], [1500, 3000, 4500], 9000),
    (20.0, [3.0, 6.0, 9.0], [3000, 6000, 9000], 18000),
    (0.002, [1.0, 1.0, 1.0], [1, 1, 0], 2),
    (0.001, [1.0, 2.0], [0, 1], 1),
    (-4.0, [2.0, 2.0], [2000, 2000], 4000),
    (0.0, [1.0, 2.0], [0, 0], 0),
    (5.0, [0.0, 0.0], [0, 0], 0),
    (10.0, [], [], 0),
]


@pytest.mark.parametrize(("target", "caps", "units", "total"), SPLITS)
def test_split_proportional(target: float, caps: list[float], units: list[int], total: int) -> None:
    assert split_proportional(target, caps, CONFIG) == (units, total)


def test_fleet_setpoint_split_sums_to_target() -> None:
    statuses = [SiteStatus(f"s{i}", tel(f"s{i}", up=1.0 + i)) for i in range(4)]
    alloc = allocate_fleet_setpoint(fleet_sp(0.007), statuses, NOW, CONFIG)
    assert alloc.per_site_kw == {"s0": 0.7, "s1": 1.4, "s2": 2.1, "s3": 2.8}
    assert alloc.shortfall_kw == 0.0
    assert [s.power_kw for s in alloc.setpoints] == [0.7, 1.4, 2.1, 2.8]
    assert all(s.kind is CommandKind.SET_POWER for s in alloc.setpoints)
    assert all(s.valid_until == NOW + 60 * S for s in alloc.setpoints)


def test_shortfall_is_reported_exactly() -> None:
    statuses = [
        SiteStatus("a", tel("a", up=4.0)),
        SiteStatus("b", tel("b", faulted=True)),
        SiteStatus("c", tel("c", age_s=30.0)),
    ]
    alloc = allocate_fleet_setpoint(fleet_sp(0.010), statuses, NOW, CONFIG)
    assert alloc.per_site_kw == {"a": 4.0}
    assert alloc.allocated_kw == 4.0
    assert alloc.shortfall_kw == 6.0
    assert math.isclose(alloc.shortfall_mw, 0.006)
    assert dict(alloc.excluded) == {"b": Exclusion.FAULTED, "c": Exclusion.OFFLINE}
    report = alloc.report()
    assert report["sites_excluded"] == {"FAULTED": 1, "OFFLINE": 1}
    assert report["shortfall_mw"] == alloc.shortfall_mw


def test_negative_target_uses_charge_headroom() -> None:
    statuses = [SiteStatus("a", tel("a", down=2.0)), SiteStatus("b", tel("b", down=6.0))]
    alloc = allocate_fleet_setpoint(fleet_sp(-0.004), statuses, NOW, CONFIG)
    assert alloc.per_site_kw == {"a": -1.0, "b": -3.0}
    assert math.isclose(math.fsum(alloc.per_site_kw.values()) + alloc.shortfall_kw, -4.0)


def test_reallocate_after_a_site_faults_only_resends_changed_shares() -> None:
    statuses = [SiteStatus(s, tel(s, up=5.0)) for s in ("a", "b", "c")]
    first = allocate_fleet_setpoint(fleet_sp(0.012), statuses, NOW, CONFIG)
    assert first.per_site_kw == {"a": 4.0, "b": 4.0, "c": 4.0}
    statuses[2] = SiteStatus("c", tel("c", faulted=True))
    second = reallocate(first, statuses, NOW + S, CONFIG)
    assert second.revision == 1
    assert second.per_site_kw == {"a": 5.0, "b": 5.0}
    assert second.shortfall_kw == 2.0
    # c is faulted: its 4 kW share is taken back with a setpoint of 0, not left to expire.
    assert {s.site_id: s.power_kw for s in second.setpoints} == {"a": 5.0, "b": 5.0, "c": 0.0}
    assert {s.setpoint_id for s in second.setpoints}.isdisjoint(
        {s.setpoint_id for s in first.setpoints}
    )
    third = reallocate(second, statuses, NOW + 2 * S, CONFIG)
    assert third.setpoints == ()


def test_clamped_site_is_derated_on_reallocation() -> None:
    statuses = [SiteStatus(s, tel(s, up=6.0)) for s in ("a", "b")]
    first = allocate_fleet_setpoint(fleet_sp(0.010), statuses, NOW, CONFIG)
    statuses[0] = SiteStatus("a", tel("a", up=6.0), result(CommandStatus.CLAMPED, 5.0, 3.0, 1.0))
    second = reallocate(first, statuses, NOW + S, CONFIG)
    assert second.per_site_kw == {"a": 3.0, "b": 6.0}
    assert second.derated == ("a",)
    assert second.shortfall_kw == 1.0


def test_same_inputs_same_ids() -> None:
    statuses = [SiteStatus(s, tel(s)) for s in ("a", "b")]
    one = allocate_fleet_setpoint(fleet_sp(0.004), statuses, NOW, CONFIG)
    two = allocate_fleet_setpoint(fleet_sp(0.004), list(reversed(statuses)), NOW, CONFIG)
    assert one.setpoints == two.setpoints


def activation(
    product: Product, requested: float, baseline: float | None = None
) -> MarketActivation:
    return MarketActivation(
        event_id=UUID,
        event_time=NOW,
        fleet_id="fleet",
        activation_id="act-1",
        product=product,
        kind=ActivationKind.ORDER,
        requested_mw=requested,
        start_time=NOW,
        end_time=NOW + 900 * S,
        baseline_mw=baseline,
    )


def test_afrr_order_becomes_order_changes_against_the_baseline() -> None:
    """The order is a change against the fleet's baseline: the shares sum to it (the
    activation's baseline_mw is what the fleet did before, not part of the change)."""
    statuses = [SiteStatus(s, tel(s, up=8.0, baseline=1.5)) for s in ("a", "b")]
    alloc = allocate_activation(activation(Product.AFRR, 0.004, 0.002), statuses, NOW, CONFIG)
    assert alloc.per_site_kw == {"a": 2.0, "b": 2.0}
    assert {(s.kind, s.product) for s in alloc.setpoints} == {(CommandKind.ORDER, Product.AFRR)}
    assert [s.power_kw for s in alloc.setpoints] == [2.0, 2.0]
    assert alloc.setpoints[0].valid_until == NOW + 900 * S


@pytest.mark.parametrize(
    ("requested_mw", "margin", "shares"),
    [
        (0.004, 0.0, {"a": 2.0, "b": 2.0}),
        (0.004, 0.03, {"a": 2.06, "b": 2.06}),  # the order and 3 % to cover tracking
        (-0.002, 0.05, {"a": -1.05, "b": -1.05}),  # downwards the same
        (0.0, 0.05, {"a": 0.0, "b": 0.0}),  # the end of an order stays 0
    ],
)
def test_an_order_margin_splits_more_than_the_order(
    requested_mw: float, margin: float, shares: dict[str, float]
) -> None:
    statuses = [SiteStatus(s, tel(s, up=8.0, down=8.0, baseline=1.5)) for s in ("a", "b")]
    config = AllocatorConfig(order_margin=margin)
    alloc = allocate_activation(activation(Product.MFRR, requested_mw), statuses, NOW, config)
    assert alloc.per_site_kw == pytest.approx(shares)
    # reserves are armed for what they are sold for, whatever the margin
    fcr = allocate_activation(
        replace(activation(Product.FCR_D_UP, 0.004), kind=ActivationKind.TEST),
        statuses,
        NOW,
        config,
    )
    assert sum(fcr.per_site_kw.values()) == pytest.approx(4.0)


@pytest.mark.parametrize("margin", [-0.01, 0.21, float("nan"), float("inf")])
def test_bad_order_margin_is_a_typed_error(margin: float) -> None:
    with pytest.raises(InvalidConfigError, match="order_margin"):
        AllocatorConfig(order_margin=margin)


def test_a_downward_order_uses_the_charge_room() -> None:
    statuses = [
        SiteStatus("a", tel("a", down=1.0, baseline=2.0)),  # room down 1 + nothing held
        SiteStatus("b", tel("b", down=3.0, baseline=0.0)),
    ]
    alloc = allocate_activation(activation(Product.MFRR, -0.002), statuses, NOW, CONFIG)
    assert alloc.per_site_kw == {"a": -0.5, "b": -1.5}
    assert all(s.kind is CommandKind.ORDER and s.power_kw is not None for s in alloc.setpoints)


def test_fcr_d_activation_arms_reserve_with_the_product_droop() -> None:
    statuses = [SiteStatus(s, tel(s, up=4.0)) for s in ("a", "b")]
    alloc = allocate_activation(activation(Product.FCR_D_UP, 0.006), statuses, NOW, CONFIG)
    arms = [s.reserve for s in alloc.setpoints]
    assert all(s.kind is CommandKind.ARM_RESERVE for s in alloc.setpoints)
    assert [(r.capacity_kw, r.f_start_hz, r.f_full_hz) for r in arms if r] == [
        (3.0, 49.9, 49.5),
        (3.0, 49.9, 49.5),
    ]


def assignment(product: Product, capacity_mw: float) -> ReserveAssignment:
    return ReserveAssignment(
        event_id=UUID,
        event_time=NOW,
        fleet_id="fleet",
        assignment_id="asg-1",
        product=product,
        capacity_mw=capacity_mw,
        valid_from=NOW,
        valid_until=NOW + 3600 * S,
        f_start_hz=50.0,
        f_full_hz=49.9,
        deadband_hz=0.01,
    )


def test_fcr_n_assignment_uses_the_smaller_direction_and_the_assignment_droop() -> None:
    statuses = [SiteStatus("a", tel("a", up=6.0, down=2.0)), SiteStatus("b", tel("b"))]
    alloc = allocate_reserve(assignment(Product.FCR_N, 0.1), statuses, NOW, CONFIG)
    assert alloc is not None
    assert alloc.per_site_kw == {"a": 2.0, "b": 5.0}
    assert math.isclose(alloc.shortfall_mw, 0.093)
    arm = alloc.setpoints[0].reserve
    assert arm is not None
    assert (arm.symmetric, arm.deadband_hz, arm.f_full_hz) == (True, 0.01, 49.9)


def test_afrr_capacity_assignment_sends_nothing() -> None:
    alloc = allocate_reserve(
        assignment(Product.AFRR, 1.0), [SiteStatus("a", tel("a"))], NOW, CONFIG
    )
    assert alloc is None  # activation-driven: its orders are split when they come


def test_expired_request_allocates_nothing() -> None:
    sp = fleet_sp(0.004)
    alloc = allocate_fleet_setpoint(sp, [SiteStatus("a", tel("a"))], sp.valid_until, CONFIG)
    assert alloc.setpoints == ()
    assert alloc.shortfall_kw == 4.0


@pytest.mark.parametrize("resolution", [0.0, -0.001, 0.003, float("nan")])
def test_bad_resolution_is_a_typed_error(resolution: float) -> None:
    with pytest.raises(InvalidConfigError):
        AllocatorConfig(resolution_kw=resolution)


def test_allocation_survives_a_table_round_trip_and_reallocates_the_same() -> None:
    statuses = [SiteStatus(s, tel(s, up=5.0)) for s in ("a", "b", "c")]
    first = allocate_reserve(assignment(Product.FCR_N, 0.012), statuses, NOW, CONFIG)
    assert first is not None
    stored = Allocation.from_dict(first.to_dict())
    assert stored.request == first.request
    assert stored.per_site_kw == first.per_site_kw
    statuses[0] = SiteStatus("a", tel("a", age_s=30.0))
    assert reallocate(stored, statuses, NOW, CONFIG) == reallocate(first, statuses, NOW, CONFIG)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"request": {"source_id": "x"}, "per_site_kw": {}, "revision": 0},
        {
            "request": AllocationRequest(
                "s", "f", CommandKind.SET_POWER, Product.NONE, 1.0, NOW
            ).to_dict()
            | {"kind": "ARM_RESERVE"},
            "per_site_kw": {},
            "revision": 0,
            "allocated_kw": 0.0,
            "shortfall_kw": 0.0,
        },
        {
            "request": AllocationRequest(
                "s", "f", CommandKind.SET_POWER, Product.NONE, 1.0, NOW
            ).to_dict(),
            "per_site_kw": {"a": 1.0},
            "revision": 0,
            "allocated_kw": 1.0,
            "shortfall_kw": 0.0,
            "excluded": {"b": "GONE"},
        },
    ],
)
def test_bad_stored_allocation_is_a_typed_error(data: dict[str, object]) -> None:
    with pytest.raises(InvalidRecordError):
        Allocation.from_dict(data)


@pytest.mark.parametrize(
    ("kind", "target", "with_reserve"),
    [
        (CommandKind.SET_POWER, float("nan"), False),
        (CommandKind.STOP, 1.0, False),
        (CommandKind.ARM_RESERVE, 1.0, False),
        (CommandKind.ARM_RESERVE, -1.0, True),
    ],
)
def test_bad_request_is_a_typed_error(kind: CommandKind, target: float, with_reserve: bool) -> None:
    reserve = ReserveArm(Product.FCR_N, 0.0, 50.0, 49.9) if with_reserve else None
    with pytest.raises(InvalidRecordError):
        AllocationRequest("s", "f", kind, Product.FCR_N, target, NOW, reserve)


# Re-allocation takes a dropped site's share back: without a setpoint of 0 a site that left the
# split keeps its old share until valid_until while the rest of the fleet already covers it
# (a demo run held 1.49x the armed FCR-D capacity).
def test_a_site_gone_from_the_book_is_sent_zero() -> None:
    statuses = [SiteStatus(s, tel(s, up=5.0)) for s in ("a", "b", "c")]
    first = allocate_fleet_setpoint(fleet_sp(0.009), statuses, NOW, CONFIG)
    assert first.per_site_kw == {"a": 3.0, "b": 3.0, "c": 3.0}
    second = reallocate(first, statuses[:2], NOW + S, CONFIG)
    assert {s.site_id: s.power_kw for s in second.setpoints} == {"a": 4.5, "b": 4.5, "c": 0.0}
    assert second.per_site_kw == {"a": 4.5, "b": 4.5}  # shares of the split only
    assert reallocate(second, statuses[:2], NOW + 2 * S, CONFIG).setpoints == ()


def test_a_dropped_reserve_site_is_disarmed() -> None:
    statuses = [SiteStatus(s, tel(s, up=4.0)) for s in ("a", "b")]
    first = allocate_activation(activation(Product.FCR_D_UP, 0.006), statuses, NOW, CONFIG)
    statuses[1] = SiteStatus("b", tel("b", age_s=30.0))  # offline
    second = reallocate(first, statuses, NOW + S, CONFIG)
    by_site = {s.site_id: s for s in second.setpoints}
    assert set(by_site) == {"a", "b"}
    assert by_site["a"].kind is CommandKind.ARM_RESERVE
    arm_a = by_site["a"].reserve
    assert arm_a is not None
    assert arm_a.capacity_kw == 4.0
    assert (by_site["b"].kind, by_site["b"].product) == (
        CommandKind.DISARM_RESERVE,
        Product.FCR_D_UP,
    )
    assert by_site["b"].reserve is None


def test_a_site_with_a_zero_share_is_not_told_again() -> None:
    statuses = [SiteStatus("a", tel("a", up=5.0)), SiteStatus("b", tel("b", up=0.0))]
    first = allocate_fleet_setpoint(fleet_sp(0.004), statuses, NOW, CONFIG)
    assert first.per_site_kw == {"a": 4.0, "b": 0.0}
    second = reallocate(first, statuses[:1], NOW + S, CONFIG)
    assert second.setpoints == ()


SITES = [f"s{i:02d}" for i in range(8)]


@given(
    st.lists(st.sets(st.sampled_from(SITES)), min_size=1, max_size=6),
    st.floats(0.001, 0.05),
)
def test_shares_in_force_equal_the_latest_split(rounds: list[set[str]], target_mw: float) -> None:
    """Apply every round's setpoints to a book of shares in force: it always equals the
    latest split (sites outside it at 0), so the fleet never holds more than it allocated."""
    statuses = [SiteStatus(s, tel(s, up=4.0)) for s in SITES]
    alloc = allocate_fleet_setpoint(fleet_sp(target_mw), statuses, NOW, CONFIG)
    in_force = {sp.site_id: sp.power_kw or 0.0 for sp in alloc.setpoints}
    for i, online in enumerate(rounds, start=1):
        present = [st_ for st_ in statuses if st_.site_id in online]
        alloc = reallocate(alloc, present, NOW + i * S, CONFIG)
        in_force.update({sp.site_id: sp.power_kw or 0.0 for sp in alloc.setpoints})
        expected = {s: alloc.per_site_kw.get(s, 0.0) for s in SITES}
        assert {s: in_force.get(s, 0.0) for s in SITES} == expected
        assert math.isclose(sum(in_force.values()), alloc.allocated_kw, abs_tol=1e-6)


# Sticky split: re-split only when the current one cannot absorb the book's change.
# Base: three sites of 5 kW up, 12 kW wanted -> 4 kW each; short base: 20 kW wanted -> 15.
STICKY_CASES: list[tuple[str, float, list[SiteStatus], bool]] = [
    ("unchanged", 0.012, [SiteStatus(s, tel(s, up=5.0)) for s in "abc"], False),
    (
        "headroom drifts above the share",
        0.012,
        [SiteStatus("a", tel("a", up=4.6)), *(SiteStatus(s, tel(s, up=5.3)) for s in "bc")],
        False,
    ),
    (
        "a new site while nothing is short",
        0.012,
        [SiteStatus(s, tel(s, up=5.0)) for s in "abcd"],
        False,
    ),
    (
        "a site faults",
        0.012,
        [*(SiteStatus(s, tel(s, up=5.0)) for s in "ab"), SiteStatus("c", tel("c", faulted=True))],
        True,
    ),
    ("a site is gone", 0.012, [SiteStatus(s, tel(s, up=5.0)) for s in "ab"], True),
    (
        "headroom falls below the share",
        0.012,
        [SiteStatus("a", tel("a", up=3.5)), *(SiteStatus(s, tel(s, up=5.0)) for s in "bc")],
        True,
    ),
    (
        "derated by a clamp",
        0.012,
        [
            SiteStatus("a", tel("a", up=5.0), result(CommandStatus.CLAMPED, 4.0, 2.0, 1.0)),
            *(SiteStatus(s, tel(s, up=5.0)) for s in "bc"),
        ],
        True,
    ),
    ("short, still short the same", 0.020, [SiteStatus(s, tel(s, up=5.0)) for s in "abc"], False),
    (
        "short, 0.1 kW more capacity (< 2 % of 20 kW)",
        0.020,
        [SiteStatus("a", tel("a", up=5.1)), *(SiteStatus(s, tel(s, up=5.0)) for s in "bc")],
        False,
    ),
    (
        "short, a new site can serve more",
        0.020,
        [SiteStatus(s, tel(s, up=5.0)) for s in "abcd"],
        True,
    ),
]


@pytest.mark.parametrize(
    ("label", "target_mw", "now_statuses", "needed"),
    STICKY_CASES,
    ids=[c[0] for c in STICKY_CASES],
)
def test_reallocation_needed(
    label: str, target_mw: float, now_statuses: list[SiteStatus], needed: bool
) -> None:
    base = [SiteStatus(s, tel(s, up=5.0)) for s in "abc"]
    first = allocate_fleet_setpoint(fleet_sp(target_mw), base, NOW, CONFIG)
    assert reallocation_needed(first, now_statuses, NOW + S, CONFIG) is needed, label
    if needed:  # and the re-split then sends something
        assert reallocate(first, now_statuses, NOW + S, CONFIG).setpoints != ()
