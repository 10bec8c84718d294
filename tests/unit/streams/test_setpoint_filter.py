"""Setpoint filter: tick-by-tick tables (OpenEMS style) of (setpoint, now) -> (reason, power)."""

from __future__ import annotations

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
    tick,
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
    )


def pw(n: int, t: float, power: float, valid_s: float = 60.0) -> SiteSetpoint:
    return sp(n, t, power=power, valid_s=valid_s)


STOP = CommandKind.STOP
Row = tuple[SiteSetpoint | None, float, FilterReason, float | None]
TICK = None

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
        (sp(1, 0.0, kind=CommandKind.ARM_RESERVE, reserve=ARM), 0.0, R.FIRST, None),
        (sp(2, 1.0, kind=CommandKind.ARM_RESERVE, reserve=ARM), 1.0, R.UNCHANGED, None),
        (sp(3, 2.0, kind=CommandKind.ARM_RESERVE, reserve=ARM2), 2.0, R.CHANGED, None),
        (sp(4, 3.0, kind=CommandKind.SAFE_MODE), 3.0, R.KIND_CHANGE, None),
        (sp(5, 4.0, kind=CommandKind.SAFE_MODE), 4.0, R.UNCHANGED, None),
        (sp(6, 50.0, kind=CommandKind.SAFE_MODE, valid_s=200.0), 50.0, R.REFRESH, None),
    ],
}


@pytest.mark.parametrize("rows", list(TABLES.values()), ids=list(TABLES))
def test_filter_table(rows: list[Row]) -> None:
    state = FilterState()
    for i, (setpoint, now_s, reason, power) in enumerate(rows):
        now = T0 + round(now_s * S)
        if setpoint is None:
            state, command, got = tick(state, now, CONFIG)
        else:
            state, command, got = filter_setpoint(state, setpoint, now, CONFIG)
        assert got is reason, f"row {i}: {got} != {reason}"
        assert (command is not None) == reason.written, f"row {i}"
        assert FilterState.from_dict(state.to_dict()) == state, f"row {i}"
        if command is not None:
            assert command.power_kw == power, f"row {i}"
            assert command.setpoint_id is not None
            assert command.command_id == command_id_for("site-1", command.setpoint_id)
            if setpoint is not None:
                assert command.kind is setpoint.kind
            assert command.valid_until > now
            assert state.last_command_id == command.command_id


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
    ],
)
def test_setpoint_payload_must_fit_its_kind(setpoint: SiteSetpoint, field: str) -> None:
    with pytest.raises(InvalidRecordError) as info:
        filter_setpoint(FilterState(), setpoint, T0, CONFIG)
    assert info.value.field == field
