"""The edge's arithmetic, table by table: bounds (battery, grid connection with the load),
the baseline (setpoint, schedule, self-consumption), what a command may have (clamped with the
limiting term named), the headroom left, shortfalls in SvK's order of limitation, and command
order between arms of one product."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from contract.enums import CommandKind, Product
from contract.records import ReserveArm
from edge.bridge.baseline import BaselineSource, baseline, scheduled_kw
from edge.bridge.bounds import Bounds, EnergyRoom, bounds
from edge.bridge.config import BatteryLimits, GridConnection, ScheduleEntry, SiteConfig
from edge.bridge.effects import Room, effect
from edge.bridge.headroom import admit_order, headroom, shortfalls
from edge.bridge.model import BridgeCommand, Cause, PowerLimits
from edge.bridge.stack import Arm, InForce, Order

T0 = datetime(2026, 1, 1, 17, 0, tzinfo=UTC)  # 18:00 in Stockholm
BATTERY = PowerLimits(5.0, 5.0, Cause.SITE_LIMIT, Cause.SITE_LIMIT)
FCRN = ReserveArm(Product.FCR_N, 2.0, 50.0, 49.9, 0.0, True)
FCRD_UP = ReserveArm(Product.FCR_D_UP, 3.0, 49.9, 49.5)
FCRD_DOWN = ReserveArm(Product.FCR_D_DOWN, 3.0, 50.1, 50.5)


def cmd(kind: CommandKind, at_s: float = 0.0, **kw: object) -> BridgeCommand:
    at = T0 + timedelta(seconds=at_s)
    return BridgeCommand(f"c-{kind}-{at_s}", "s", kind, at, at + timedelta(minutes=15), **kw)  # type: ignore[arg-type]  # test helper


def armed(*arms: ReserveArm) -> InForce:
    out = InForce()
    for a in arms:
        out = out.with_arm(Arm(a, cmd(CommandKind.ARM_RESERVE, reserve=a)))
    return out


# (import kW, export kW, load kW, pv kW) -> (max kW, min kW, up cause, down cause)
BOUNDS = [
    ((None, None, 2.0, 0.0), (5.0, -5.0, Cause.SITE_LIMIT, Cause.SITE_LIMIT)),
    ((11.0, 11.0, 2.0, 0.0), (5.0, -5.0, Cause.SITE_LIMIT, Cause.SITE_LIMIT)),
    ((6.0, None, 8.0, 0.0), (5.0, 0.0, Cause.SITE_LIMIT, Cause.GRID_LIMIT)),  # load > fuse
    ((4.0, None, 2.0, 0.0), (5.0, -2.0, Cause.SITE_LIMIT, Cause.GRID_LIMIT)),  # fuse binds
    ((None, 3.0, 0.5, 6.0), (0.0, -5.0, Cause.GRID_LIMIT, Cause.SITE_LIMIT)),  # PV > export
    ((None, 4.0, 1.0, 2.0), (3.0, -5.0, Cause.GRID_LIMIT, Cause.SITE_LIMIT)),
    ((4.0, 4.0, None, 2.0), (5.0, -5.0, Cause.SITE_LIMIT, Cause.SITE_LIMIT)),  # load unknown
]


@pytest.mark.parametrize(("given", "expected"), BOUNDS)
def test_bounds_table(
    given: tuple[float | None, float | None, float | None, float],
    expected: tuple[float, float, Cause, Cause],
) -> None:
    imp, exp, load, pv = given
    b = bounds(BATTERY, import_max_kw=imp, export_max_kw=exp, load_kw=load, pv_kw=pv)
    assert (b.max_kw, b.min_kw, b.up_cause, b.down_cause) == pytest.approx(expected)


WIDE = Bounds.of_limits(BATTERY)

# (setpoint, scheduled, load, pv, last) -> (kW, source)
BASELINES = [
    ((3.0, -2.0, 1.0, 0.0, 0.0), (3.0, BaselineSource.SETPOINT)),
    ((9.0, None, 1.0, 0.0, 0.0), (5.0, BaselineSource.SETPOINT)),  # bounded
    ((None, -2.0, 1.0, 0.0, 0.0), (-2.0, BaselineSource.SCHEDULE)),
    ((None, None, 1.8, 0.3, 0.0), (1.5, BaselineSource.SELF_CONSUMPTION)),
    ((None, None, 0.4, 6.0, 0.0), (-5.0, BaselineSource.SELF_CONSUMPTION)),  # charge limit
    ((None, None, 7.5, 0.0, 0.0), (5.0, BaselineSource.SELF_CONSUMPTION)),  # a sauna
    ((None, None, None, 0.0, 1.2), (1.2, BaselineSource.UNKNOWN)),
]


@pytest.mark.parametrize(("given", "expected"), BASELINES)
def test_baseline_table(
    given: tuple[float | None, float | None, float | None, float, float],
    expected: tuple[float, BaselineSource],
) -> None:
    sp, sched, load, pv, last = given
    got = baseline(WIDE, setpoint_kw=sp, scheduled=sched, load_kw=load, pv_kw=pv, last_kw=last)
    assert (got.kw, got.source) == pytest.approx(expected)


def test_schedule_in_local_time_over_midnight() -> None:
    night = [ScheduleEntry(start=time(23, 0), end=time(5, 0), power_kw=-3.0)]
    stockholm = "Europe/Stockholm"
    assert scheduled_kw(night, stockholm, datetime(2026, 1, 1, 22, 30, tzinfo=UTC)) == -3.0
    assert scheduled_kw(night, stockholm, datetime(2026, 1, 1, 3, 59, tzinfo=UTC)) == -3.0
    assert scheduled_kw(night, stockholm, datetime(2026, 1, 1, 4, 0, tzinfo=UTC)) is None
    assert scheduled_kw([], stockholm, T0) is None


def test_site_config_grid_schedule_and_assumptions() -> None:
    base: dict[str, object] = {
        "site_id": "s",
        "oem": "huawei",
        "host": "h",
        "rated_power_kw": 10.0,
        "battery": BatteryLimits(max_charge_kw=5.0, max_discharge_kw=5.0),
    }
    bare = SiteConfig.model_validate(base)
    assert len(bare.assumptions()) == 1
    assert "assuming the grid connection never limits" in bare.assumptions()[0]
    fused = SiteConfig.model_validate({**base, "grid": {"fuse_a": 20}})
    assert fused.assumptions() == []
    assert fused.grid is not None
    assert (fused.grid.max_import_kw, fused.grid.max_export_kw) == pytest.approx((13.8, 13.8))
    assert GridConnection(import_limit_kw=9.0, export_limit_kw=3.0).max_export_kw == 3.0
    bads: list[tuple[dict[str, object], str]] = [
        ({"grid": {}}, "fuse_a or import_limit_kw"),
        ({"grid": {"fuse_a": 16, "import_limit_kw": 11.0}}, "fuse_a or import_limit_kw"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"schedule": [{"start": "02:00", "end": "02:00", "power_kw": 1}]}, "empty"),
        (
            {
                "schedule": [
                    {"start": "01:00", "end": "03:00", "power_kw": 1},
                    {"start": "02:00", "end": "04:00", "power_kw": 1},
                ]
            },
            "overlap",
        ),
    ]
    for bad, message in bads:
        with pytest.raises(ValueError, match=message):
            SiteConfig.model_validate({**base, **bad})


# (arm, in force before, baseline, bounds, energy) -> (capacity, cause, words in the reason)
ARMS = [
    (FCRD_UP, InForce(), 1.0, WIDE, EnergyRoom(), (3.0, None, None)),
    (FCRD_UP, armed(FCRN), 1.0, WIDE, EnergyRoom(), (2.0, Cause.SITE_LIMIT, "other products 2")),
    (FCRN, armed(FCRD_DOWN), -3.5, WIDE, EnergyRoom(), (0.0, Cause.SITE_LIMIT, "not armed")),
    (
        FCRD_DOWN,
        InForce(),
        1.2,
        bounds(BATTERY, import_max_kw=2.5, load_kw=1.2, pv_kw=0.0),
        EnergyRoom(),
        (2.5, Cause.GRID_LIMIT, "downward bound 1.300 kW (GRID_LIMIT)"),
    ),
    (FCRN, InForce(), 0.0, WIDE, EnergyRoom(1.5, 4.0), (1.5, Cause.SOC_LIMIT, "60.0 min")),
    (FCRD_UP, InForce(), 0.0, WIDE, EnergyRoom(0.5, 4.0), (1.5, Cause.SOC_LIMIT, "20.0 min")),
    (FCRD_UP, armed(FCRD_UP), 1.0, WIDE, EnergyRoom(), (3.0, None, None)),  # replaces itself
]


@pytest.mark.parametrize("case", ARMS)
def test_an_arm_gets_the_room_there_is(
    case: tuple[
        ReserveArm, InForce, float, Bounds, EnergyRoom, tuple[float, Cause | None, str | None]
    ],
) -> None:
    arm, before, base, within, energy, (capacity, cause, words) = case
    c = cmd(CommandKind.ARM_RESERVE, at_s=1.0, reserve=arm)
    eff = effect(c, before, Room(base, within, energy), c.event_time)
    assert not isinstance(eff, str)
    assert eff.in_force.armed_kw(arm.product) == pytest.approx(capacity)
    assert eff.cause is cause
    if words is None:
        assert eff.reason is None
    else:
        assert eff.reason is not None
        assert words in eff.reason


def test_an_order_is_clamped_in_its_direction_and_for_its_energy() -> None:
    before = armed(FCRD_UP)
    got = admit_order(
        Product.MFRR,
        4.0,
        valid_until=T0 + timedelta(minutes=15),
        in_force=before,
        baseline_kw=1.0,
        bounds=WIDE,
        energy=EnergyRoom(),
        now=T0,
    )
    assert (got.kw, got.cause) == (1.0, Cause.SITE_LIMIT)  # 5 - 1 - 3 (FCR-D up)
    down = admit_order(
        Product.MFRR,
        -4.0,
        valid_until=T0 + timedelta(hours=1),
        in_force=before,
        baseline_kw=1.0,
        bounds=WIDE,
        energy=EnergyRoom(4.0, 2.0),
        now=T0,
    )
    assert (down.kw, down.cause) == (-2.0, Cause.SOC_LIMIT)  # 2 kWh below the top, for 1 h
    assert down.reason is not None
    assert "MFRR order change 4.000 kW clamped to 2.000 kW" in down.reason


def test_headroom_and_shortfalls_in_the_order_of_limitation() -> None:
    """FCR-N 2 + FCR-D up 3 armed on a 5 kW battery at baseline 0: no headroom up, all fits.
    A 6 kW sauna moves the baseline to 5 kW: 5 kW of upward activation no longer fits;
    FCR-D up is short first (all of its 3 kW), then FCR-N (2 kW); downwards room grows."""
    held = armed(FCRN, FCRD_UP)
    assert headroom(WIDE, 0.0, held) == (0.0, 3.0)
    assert shortfalls(WIDE, 0.0, held) == {}
    assert headroom(WIDE, 5.0, held) == (0.0, 8.0)
    assert shortfalls(WIDE, 5.0, held) == {Product.FCR_D_UP: 3.0, Product.FCR_N: 2.0}
    assert shortfalls(WIDE, 1.0, held) == {Product.FCR_D_UP: 1.0}


def test_command_order_decides_between_two_arms_of_one_product() -> None:
    newer = cmd(CommandKind.ARM_RESERVE, at_s=10.0, reserve=FCRD_UP)
    older = cmd(CommandKind.ARM_RESERVE, at_s=5.0, reserve=FCRD_DOWN)
    late = cmd(CommandKind.ARM_RESERVE, at_s=5.0, reserve=FCRD_UP)
    held = InForce().with_arm(Arm(FCRD_UP, newer))
    room = Room(0.0, WIDE, EnergyRoom())
    refused = effect(late, held, room, T0)
    assert isinstance(refused, str)
    assert "the later one stays" in refused
    assert newer.command_id in refused
    other = effect(older, held, room, T0)  # another product: both stay
    assert not isinstance(other, str)
    assert set(other.in_force.arms) == {Product.FCR_D_UP, Product.FCR_D_DOWN}
    disarm = cmd(CommandKind.DISARM_RESERVE, at_s=1.0, product=Product.FCR_D_UP)
    assert isinstance(effect(disarm, held, room, T0), str)  # issued before the arm in force
    later = cmd(CommandKind.DISARM_RESERVE, at_s=20.0, product=Product.FCR_D_UP)
    gone = effect(later, held, room, T0)
    assert not isinstance(gone, str)
    assert gone.in_force.empty
    again = effect(later, gone.in_force, room, T0)
    assert not isinstance(again, str)
    assert again.reason == "FCR_D_UP was not armed"


def test_an_order_of_zero_ends_it_and_stop_and_safe_mode_end_everything() -> None:
    order = cmd(CommandKind.ORDER, power_kw=2.0, product=Product.AFRR)
    held = armed(FCRN).with_order(Order(Product.AFRR, 2.0, order))
    room = Room(0.0, WIDE, EnergyRoom())
    end = effect(cmd(CommandKind.ORDER, 1.0, power_kw=0.0, product=Product.AFRR), held, room, T0)
    assert not isinstance(end, str)
    assert end.in_force.orders == {}
    assert set(end.in_force.arms) == {Product.FCR_N}
    stop = effect(cmd(CommandKind.STOP, 2.0), held, room, T0)
    assert not isinstance(stop, str)
    assert (stop.in_force.arms, stop.in_force.orders) == ({}, {})
    assert stop.in_force.held is not None
    assert stop.in_force.held.power_kw == 0.0
    safe = effect(cmd(CommandKind.SAFE_MODE, 3.0), held, room, T0)
    assert not isinstance(safe, str)
    assert safe.in_force.empty
