"""Setpoint filter: tick-by-tick tables (OpenEMS style) of (setpoint, now) -> (reason, power)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from contract.enums import CommandKind, Product, SiteMode
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.records import ReserveArm, SiteSetpoint, SiteTelemetry
from streams.steps.ids import command_id_for
from streams.steps.setpoint_filter import (
    FilterConfig,
    FilterReason,
    FilterState,
    SiteLimits,
    filter_setpoint,
    lane_of,
    tick,
    tick_lane,
)

S = 1_000_000
T0 = 1_700_000_000 * S
CONFIG = FilterConfig(max_age_s=5.0, threshold_kw=0.5, min_interval_s=10.0, refresh_before_s=15.0)
R = FilterReason
ARM = ReserveArm(Product.FCR_D_UP, 8.0, 49.9, 49.5)
ARM2 = ReserveArm(Product.FCR_D_UP, 6.0, 49.9, 49.5)


def sp(
    n: int,
    t: float,
    *,
    kind: CommandKind = CommandKind.SET_POWER,
    power: float | None = None,
    valid_s: float = 60.0,
    reserve: ReserveArm | None = None,
    product: Product | None = None,
) -> SiteSetpoint:
    return SiteSetpoint(
        event_id=f"00000000-0000-4000-8000-{n:012d}",
        event_time=T0 + round(t * S),
        site_id="site-1",
        setpoint_id=f"sp-{n}",
        kind=kind,
        power_kw=power,
        reserve=reserve,
        valid_until=T0 + round((t + valid_s) * S),
        product=product,
    )


def pw(n: int, t: float, power: float, valid_s: float = 60.0) -> SiteSetpoint:
    return sp(n, t, power=power, valid_s=valid_s)


STOP = CommandKind.STOP
Row = tuple[SiteSetpoint | None, float, FilterReason, float | None]
TICK = None


@dataclass(frozen=True)
class Tick:
    """A timer tick of one product lane."""

    product: Product


LaneRow = tuple[SiteSetpoint | Tick, float, FilterReason, float | None]

# Each row: (setpoint, or TICK for the timer, now [s after T0], expected reason, expected
# command power or None).
TABLES: dict[str, list[Row]] = {
    "first write, then the gate suppresses small changes inside min_interval": [
        (pw(1, 0.0, 5.0), 0.0, R.FIRST, 5.0),
        (pw(2, 1.0, 5.2), 1.0, R.SUPPRESSED, None),
        (pw(3, 2.0, 5.0), 2.0, R.UNCHANGED, None),
        (pw(4, 3.0, 5.6), 3.0, R.RAMP_STEP, 5.6),
    ],
    "a slow same-direction ramp is compared with the last WRITTEN power": [
        (pw(1, 0.0, 0.0), 0.0, R.FIRST, 0.0),
        (pw(2, 1.0, 0.2), 1.0, R.SUPPRESSED, None),
        (pw(3, 2.0, 0.4), 2.0, R.SUPPRESSED, None),
        (pw(4, 3.0, 0.6), 3.0, R.RAMP_STEP, 0.6),
        (pw(5, 4.0, 0.8), 4.0, R.SUPPRESSED, None),
        (pw(6, 5.0, 1.1), 5.0, R.RAMP_STEP, 1.1),
    ],
    "a small change passes once min_interval has elapsed; an identical one never": [
        (pw(1, 0.0, 3.0), 0.0, R.FIRST, 3.0),
        (pw(2, 9.0, 3.1), 9.0, R.SUPPRESSED, None),
        (pw(3, 10.0, 3.1), 10.0, R.INTERVAL_ELAPSED, 3.1),
        (pw(4, 30.0, 3.1), 30.0, R.UNCHANGED, None),
    ],
    "refresh before the previous command expires": [
        (pw(1, 0.0, 3.0, valid_s=30.0), 0.0, R.FIRST, 3.0),
        (pw(2, 10.0, 3.0, valid_s=30.0), 10.0, R.UNCHANGED, None),
        (pw(3, 16.0, 3.0, valid_s=30.0), 16.0, R.REFRESH, 3.0),
        (pw(4, 17.0, 3.0, valid_s=30.0), 17.0, R.UNCHANGED, None),
    ],
    "a write after the previous command expired": [
        (pw(1, 0.0, 3.0, valid_s=5.0), 0.0, R.FIRST, 3.0),
        (pw(2, 6.0, 3.0, valid_s=5.0), 6.0, R.PREVIOUS_EXPIRED, 3.0),
    ],
    "stale, out of order, expired and duplicate setpoints are dropped": [
        (pw(1, 0.0, 3.0), 0.0, R.FIRST, 3.0),
        (pw(2, 1.0, 9.0), 7.0, R.STALE, None),
        (pw(3, 2.0, 9.0), 2.5, R.RAMP_STEP, 9.0),
        (pw(4, 1.5, 1.0), 3.0, R.OUT_OF_ORDER, None),
        (pw(5, 3.0, 1.0, valid_s=0.5), 3.6, R.EXPIRED, None),
        (pw(3, 2.0, 9.0), 3.7, R.DUPLICATE, None),
    ],
    "a stop bypasses everything and resets the gate": [
        (pw(1, 0.0, 3.0), 0.0, R.FIRST, 3.0),
        (sp(2, -100.0, kind=STOP, valid_s=1.0), 0.5, R.STOP, None),
        (sp(2, -100.0, kind=STOP, valid_s=1.0), 0.6, R.STOP, None),
        (pw(3, 1.0, 3.0), 1.0, R.KIND_CHANGE, 3.0),
    ],
    "a suppressed change is written by the timer once min_interval has passed": [
        (pw(1, 0.0, 5.0), 0.0, R.FIRST, 5.0),
        (pw(2, 1.0, 5.2), 1.0, R.SUPPRESSED, None),
        (TICK, 5.0, R.SUPPRESSED, None),
        (pw(3, 6.0, 5.3), 6.0, R.SUPPRESSED, None),
        (TICK, 10.0, R.DEFERRED, 5.3),
        (TICK, 11.0, R.UNCHANGED, None),
        (pw(4, 12.0, 5.3), 12.0, R.UNCHANGED, None),
    ],
    "an unchanged setpoint clears the pending one; an expired pending one is dropped": [
        (pw(1, 0.0, 5.0), 0.0, R.FIRST, 5.0),
        (pw(2, 1.0, 5.2), 1.0, R.SUPPRESSED, None),
        (pw(3, 2.0, 5.0), 2.0, R.UNCHANGED, None),
        (TICK, 10.0, R.UNCHANGED, None),
        (pw(4, 11.0, 5.1), 11.0, R.INTERVAL_ELAPSED, 5.1),
        (pw(5, 12.0, 5.2, valid_s=2.0), 12.0, R.SUPPRESSED, None),
        (TICK, 14.0, R.EXPIRED, None),
        (TICK, 30.0, R.UNCHANGED, None),
    ],
    "safe mode and reserve arming pass unless an exact duplicate": [
        (sp(1, 0.0, kind=CommandKind.ARM_RESERVE, reserve=ARM), 0.0, R.FIRST, 8.0),
        (sp(2, 1.0, kind=CommandKind.ARM_RESERVE, reserve=ARM), 1.0, R.UNCHANGED, None),
        (sp(3, 2.0, kind=CommandKind.ARM_RESERVE, reserve=ARM2), 2.0, R.CHANGED, 6.0),
        (sp(4, 3.0, kind=CommandKind.SAFE_MODE), 3.0, R.KIND_CHANGE, None),
        (sp(5, 4.0, kind=CommandKind.SAFE_MODE), 4.0, R.UNCHANGED, None),
        (sp(6, 50.0, kind=CommandKind.SAFE_MODE, valid_s=200.0), 50.0, R.REFRESH, None),
    ],
}


A = CommandKind.ARM_RESERVE
D = CommandKind.DISARM_RESERVE
O = CommandKind.ORDER  # noqa: E741  # a column of the tables below
N, UP, DOWN = Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN
BAND = {N: (50.0, 49.9), UP: (49.9, 49.5), DOWN: (50.1, 50.5)}


def arm(n: int, t: float, product: Product, capacity: float, valid_s: float = 60.0) -> SiteSetpoint:
    f_start, f_full = BAND[product]
    reserve = ReserveArm(product, capacity, f_start, f_full, 0.0, product is N)
    return sp(n, t, kind=A, reserve=reserve, valid_s=valid_s)


def order(n: int, t: float, product: Product, change: float) -> SiteSetpoint:
    return sp(n, t, kind=O, power=change, product=product)


def disarm(n: int, t: float, product: Product) -> SiteSetpoint:
    return sp(n, t, kind=D, product=product)


# Each row: (setpoint, or Tick(product) for the timer on that lane, now [s after T0],
# expected reason, expected command payload: power/change, or an arm's capacity).
LANE_TABLES: dict[str, list[LaneRow]] = {
    "three products armed at once, each gated in its own lane": [
        (arm(1, 0.0, N, 4.0), 0.0, R.FIRST, 4.0),
        (arm(2, 0.1, UP, 3.0), 0.1, R.FIRST, 3.0),
        (arm(3, 0.2, DOWN, 2.0), 0.2, R.FIRST, 2.0),
        (arm(4, 1.0, N, 4.2), 1.0, R.SUPPRESSED, None),
        (arm(5, 1.1, UP, 3.0), 1.1, R.UNCHANGED, None),
        (arm(6, 1.2, DOWN, 1.0), 1.2, R.CHANGED, 1.0),
        (Tick(UP), 9.0, R.UNCHANGED, None),
        (Tick(N), 9.0, R.SUPPRESSED, None),
        (Tick(N), 10.0, R.DEFERRED, 4.2),
        (Tick(N), 11.0, R.UNCHANGED, None),
    ],
    "an arm in another droop band is a change whatever its capacity": [
        (arm(1, 0.0, UP, 3.0), 0.0, R.FIRST, 3.0),
        (
            sp(2, 1.0, kind=A, reserve=ReserveArm(UP, 3.0, 49.7, 49.5)),
            1.0,
            R.CHANGED,
            3.0,
        ),
    ],
    "orders: a small change waits, an end passes at once": [
        (order(1, 0.0, Product.MFRR, 2.0), 0.0, R.FIRST, 2.0),
        (order(2, 1.0, Product.MFRR, 2.3), 1.0, R.SUPPRESSED, None),
        (order(3, 2.0, Product.MFRR, 2.4), 2.0, R.SUPPRESSED, None),
        (order(4, 3.0, Product.AFRR, -1.0), 3.0, R.FIRST, -1.0),
        (Tick(Product.MFRR), 10.0, R.DEFERRED, 2.4),
        (order(5, 11.0, Product.MFRR, 0.3), 11.0, R.RAMP_STEP, 0.3),
        (order(6, 12.0, Product.MFRR, 0.0), 12.0, R.ENDED, 0.0),
        (order(7, 13.0, Product.MFRR, 0.0), 13.0, R.UNCHANGED, None),
    ],
    "a disarm passes; a second one is a duplicate; an arm after it is written": [
        (arm(1, 0.0, UP, 3.0), 0.0, R.FIRST, 3.0),
        (disarm(2, 1.0, UP), 1.0, R.KIND_CHANGE, None),
        (disarm(3, 2.0, UP), 2.0, R.UNCHANGED, None),
        (disarm(4, 3.0, DOWN), 3.0, R.FIRST, None),
        (arm(5, 4.0, UP, 3.0), 4.0, R.KIND_CHANGE, 3.0),
    ],
    "stop and safe mode end every lane; the site lane is independent of them": [
        (pw(1, 0.0, 3.0), 0.0, R.FIRST, 3.0),
        (arm(2, 0.5, N, 2.0), 0.5, R.FIRST, 2.0),
        (order(3, 1.0, Product.AFRR, 1.0), 1.0, R.FIRST, 1.0),
        (pw(4, 1.5, 3.2), 1.5, R.SUPPRESSED, None),
        (sp(5, 2.0, kind=STOP), 2.0, R.STOP, None),
        (arm(6, 3.0, N, 2.0), 3.0, R.FIRST, 2.0),
        (sp(7, 4.0, kind=CommandKind.SAFE_MODE), 4.0, R.KIND_CHANGE, None),
        (sp(8, 5.0, kind=CommandKind.SAFE_MODE), 5.0, R.UNCHANGED, None),
        (arm(9, 6.0, N, 2.0), 6.0, R.FIRST, 2.0),
    ],
    "an unchanged arm that extends validity is written before the old one expires": [
        (arm(1, 0.0, UP, 3.0, valid_s=60.0), 0.0, R.FIRST, 3.0),
        (arm(2, 1.0, UP, 3.0, valid_s=3600.0), 1.0, R.UNCHANGED, None),
        (Tick(UP), 30.0, R.UNCHANGED, None),
        (Tick(UP), 46.0, R.REFRESH, 3.0),
        (Tick(UP), 47.0, R.UNCHANGED, None),
    ],
    "out of order across lanes, and a lane's own duplicate": [
        (arm(1, 5.0, UP, 3.0), 5.0, R.FIRST, 3.0),
        (order(2, 4.0, Product.MFRR, 1.0), 5.5, R.OUT_OF_ORDER, None),
        (order(3, 6.0, Product.MFRR, 1.0), 6.0, R.FIRST, 1.0),
        (arm(1, 5.0, UP, 3.0), 6.5, R.DUPLICATE, None),
    ],
}


@pytest.mark.parametrize("rows", list(LANE_TABLES.values()), ids=list(LANE_TABLES))
def test_lane_table(rows: list[LaneRow]) -> None:
    run_table(rows)


def test_one_tick_writes_every_lane_that_is_due() -> None:
    state = FilterState()
    for setpoint in (pw(1, 0.0, 3.0), arm(2, 0.0, N, 2.0), order(3, 0.0, Product.AFRR, 1.0)):
        state, _, _ = filter_setpoint(state, setpoint, T0, CONFIG)
    for setpoint in (pw(4, 1.0, 3.2), arm(5, 1.0, N, 2.2), order(6, 1.0, Product.AFRR, 1.1)):
        state, command, _ = filter_setpoint(state, setpoint, T0 + S, CONFIG)
        assert command is None
    state, commands = tick(state, T0 + 10 * S, CONFIG)
    assert [(c.kind, c.setpoint_id) for c in commands] == [
        (CommandKind.SET_POWER, "sp-4"),
        (A, "sp-5"),
        (O, "sp-6"),
    ]
    assert tick(state, T0 + 11 * S, CONFIG) == (state, [])


def test_entries_written_before_lanes_still_load() -> None:
    """The changelog's earlier shape: one reserve per site in the site's own fields, a
    pending SET_POWER without a kind."""
    armed = {
        "last_event_time": T0,
        "last_setpoint_id": "sp-1",
        "last_kind": "ARM_RESERVE",
        "last_power_kw": None,
        "last_reserve": ARM.to_record(),
        "last_written_at": T0,
        "last_valid_until": T0 + 60 * S,
        "last_command_id": "c-1",
        "pending": None,
    }
    state = FilterState.from_dict(armed)
    assert state.last_kind is None
    lane = state.lane(Product.FCR_D_UP)
    assert lane is not None
    assert (lane.kind, lane.reserve, lane.command_id) == (A, ARM, "c-1")
    # the same arm again is recognised as unchanged, a smaller one is a change
    _, command, reason = filter_setpoint(state, arm(2, 1.0, UP, 8.0), T0 + S, CONFIG)
    assert (command, reason) == (None, R.UNCHANGED)
    _, command, reason = filter_setpoint(state, arm(3, 1.0, UP, 6.0), T0 + S, CONFIG)
    assert reason is R.CHANGED
    powered = armed | {
        "last_kind": "SET_POWER",
        "last_power_kw": 3.0,
        "last_reserve": None,
        "pending": {
            "site_id": "site-1",
            "setpoint_id": "sp-2",
            "power_kw": 3.2,
            "valid_until": T0 + 60 * S,
        },
    }
    state = FilterState.from_dict(powered)
    assert state.lanes == ()
    assert state.pending is not None
    assert state.pending.kind is CommandKind.SET_POWER
    state, commands = tick(state, T0 + 10 * S, CONFIG)
    assert [c.power_kw for c in commands] == [3.2]


def test_order_changes_are_clamped_to_the_full_swing() -> None:
    limits = SiteLimits(max_discharge_kw=5.0, max_charge_kw=3.0)
    _, command, _ = filter_setpoint(
        FilterState(), order(1, 0.0, Product.MFRR, -12.0), T0, CONFIG, limits
    )
    assert command is not None
    assert command.power_kw == -8.0
    assert command.product is Product.MFRR


@pytest.mark.parametrize("rows", list(TABLES.values()), ids=list(TABLES))
def test_filter_table(rows: list[Row]) -> None:
    run_table(rows)


def run_table(rows: list[Row] | list[LaneRow]) -> None:
    state = FilterState()
    for i, (setpoint, now_s, reason, payload) in enumerate(rows):
        now = T0 + round(now_s * S)
        if setpoint is None or isinstance(setpoint, Tick):
            product = None if setpoint is None else setpoint.product
            state, command, got = tick_lane(state, product, now, CONFIG)
        else:
            product = lane_of(setpoint)
            state, command, got = filter_setpoint(state, setpoint, now, CONFIG)
        assert got is reason, f"row {i}: {got} != {reason}"
        assert (command is not None) == reason.written, f"row {i}"
        assert FilterState.from_dict(state.to_dict()) == state, f"row {i}"
        if command is not None:
            got_payload = command.power_kw
            if command.reserve is not None:
                got_payload = command.reserve.capacity_kw
            assert got_payload == payload, f"row {i}"
            assert command.setpoint_id is not None
            assert command.command_id == command_id_for("site-1", command.setpoint_id)
            if setpoint is not None and not isinstance(setpoint, Tick):
                assert command.kind is setpoint.kind
            assert command.valid_until > now
            if product is None:
                assert state.last_command_id == command.command_id
            else:
                lane = state.lane(product)
                assert lane is not None
                assert lane.command_id == command.command_id


def test_stop_is_never_expired_on_arrival() -> None:
    stop = sp(1, 0.0, kind=STOP, valid_s=0.001)
    _, command, _ = filter_setpoint(FilterState(), stop, T0 + 10 * S, CONFIG)
    assert command is not None
    assert command.valid_until == T0 + 10 * S + 60 * S


def test_limits_clamp_power_and_reserve() -> None:
    limits = SiteLimits(max_discharge_kw=5.0, max_charge_kw=3.0)
    state, command, _ = filter_setpoint(FilterState(), pw(1, 0.0, 12.0), T0, CONFIG, limits)
    assert command is not None
    assert command.power_kw == 5.0
    state, command, _ = filter_setpoint(state, pw(2, 1.0, -12.0), T0 + S, CONFIG, limits)
    assert command is not None
    assert command.power_kw == -3.0
    down = ReserveArm(Product.FCR_D_DOWN, 9.0, 50.1, 50.5)
    arm = sp(3, 2.0, kind=CommandKind.ARM_RESERVE, reserve=down)
    _, command, _ = filter_setpoint(state, arm, T0 + 2 * S, CONFIG, limits)
    assert command is not None
    assert command.reserve is not None
    assert command.reserve.capacity_kw == 3.0


def test_limits_from_telemetry() -> None:
    telemetry = SiteTelemetry(
        event_id="00000000-0000-4000-8000-000000000000",
        event_time=T0,
        site_id="site-1",
        oem="saj",
        model="H2",
        mode=SiteMode.UNKNOWN,
        battery_power_kw=0.0,
        soc_pct=50.0,
        grid_power_kw=0.0,
        pv_power_kw=0.0,
        load_kw=0.0,
        headroom_up_kw=1.0,
        headroom_down_kw=1.0,
        max_discharge_kw=6.0,
        max_charge_kw=4.0,
    )
    limits = SiteLimits.from_telemetry(telemetry)
    _, command, _ = filter_setpoint(FilterState(), pw(1, 0.0, -9.0), T0, CONFIG, limits)
    assert command is not None
    assert command.power_kw == -4.0


def test_same_setpoint_reprocessed_after_restart_yields_same_command_id() -> None:
    state, first, _ = filter_setpoint(FilterState(), pw(1, 0.0, 4.0), T0, CONFIG)
    restored = FilterState.from_dict(state.to_dict())
    assert restored == state
    _, again, reason = filter_setpoint(restored, pw(1, 0.0, 4.0), T0 + S, CONFIG)
    assert again is None
    assert reason is R.DUPLICATE
    _, replay, _ = filter_setpoint(FilterState(), pw(1, 0.0, 4.0), T0 + S, CONFIG)
    assert first is not None
    assert replay is not None
    assert replay.command_id == first.command_id
    assert replay.event_id == first.event_id


def test_state_round_trip_with_reserve() -> None:
    arm = sp(1, 0.0, kind=CommandKind.ARM_RESERVE, reserve=ARM)
    state, _, _ = filter_setpoint(FilterState(), arm, T0, CONFIG)
    assert FilterState.from_dict(state.to_dict()) == state
    assert FilterState.from_dict(FilterState().to_dict()) == FilterState()


@pytest.mark.parametrize(
    "bad",
    [
        {"last_kind": "JUMP"},
        {"last_event_time": "yesterday"},
        {"last_reserve": {"product": "FCR_N"}},
        {"last_setpoint_id": 7},
        {"pending": {"site_id": "s"}},
        {"pending": "soon"},
        {"lanes": "FCR_N"},
        {"lanes": [{"product": "FCR_N", "kind": "SET_POWER"}]},
        {"lanes": [{"product": "FCR_N"}, {"product": "FCR_N"}]},
        {"lanes": [{"product": "WARP"}]},
        {
            "lanes": [
                {
                    "product": "FCR_N",
                    "pending": {
                        "site_id": "s",
                        "setpoint_id": "p",
                        "power_kw": None,
                        "valid_until": 1,
                        "kind": "ARM_RESERVE",
                    },
                }
            ]
        },
        {"last_kind": "ARM_RESERVE"},
    ],
)
def test_bad_state_is_a_typed_error(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidRecordError):
        FilterState.from_dict(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold_kw": -1.0}, {"max_age_s": float("nan")}, {"min_interval_s": float("inf")}],
)
def test_bad_config_is_a_typed_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidConfigError):
        FilterConfig(**kwargs)  # type: ignore[arg-type]  # only float fields are passed


def test_bad_limits_are_a_typed_error() -> None:
    with pytest.raises(InvalidConfigError):
        SiteLimits(max_discharge_kw=-1.0, max_charge_kw=1.0)


@pytest.mark.parametrize(
    ("setpoint", "field"),
    [
        (sp(1, 0.0, kind=CommandKind.SET_POWER, power=None), "power_kw"),
        (sp(1, 0.0, kind=CommandKind.SET_POWER, power=float("inf")), "power_kw"),
        (sp(1, 0.0, kind=CommandKind.ARM_RESERVE), "reserve"),
        (sp(1, 0.0, kind=A, reserve=ReserveArm(Product.AFRR, 1.0, 50.0, 49.9)), "reserve"),
        (sp(1, 0.0, kind=A, reserve=ARM, product=Product.FCR_N), "product"),
        (sp(1, 0.0, kind=D), "product"),
        (sp(1, 0.0, kind=D, product=Product.MFRR), "product"),
        (sp(1, 0.0, kind=O, power=1.0, product=Product.FCR_N), "product"),
        (sp(1, 0.0, kind=O, product=Product.AFRR), "power_kw"),
        (sp(1, 0.0, kind=O, power=float("nan"), product=Product.AFRR), "power_kw"),
    ],
)
def test_setpoint_payload_must_fit_its_kind(setpoint: SiteSetpoint, field: str) -> None:
    with pytest.raises(InvalidRecordError) as info:
        filter_setpoint(FilterState(), setpoint, T0, CONFIG)
    assert info.value.field == field
