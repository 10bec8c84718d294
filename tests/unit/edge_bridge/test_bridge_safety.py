"""Safety gate: ownership, expiry, bounds (rated, map, site, BMS, SoC reserve), headroom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.enums import CommandKind
from edge.bridge.bounds import Bounds
from edge.bridge.config import BatteryLimits, SiteConfig
from edge.bridge.headroom import headroom
from edge.bridge.model import BridgeCommand, BridgeInputError, Cause, PowerLimits
from edge.bridge.safety import (
    Accepted,
    LiveLimits,
    Refusal,
    Rejected,
    check,
    power_limits,
)
from edge.bridge.stack import InForce

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SITE = SiteConfig(
    site_id="s1",
    oem="huawei",
    host="h",
    rated_power_kw=10.0,
    battery=BatteryLimits(max_charge_kw=5.0, max_discharge_kw=6.0),
    soc_reserve_min_pct=10.0,
    soc_reserve_max_pct=90.0,
)


def cmd(
    kind: CommandKind = CommandKind.SET_POWER,
    power_kw: float | None = 3.0,
    site_id: str = "s1",
    valid_s: float = 60.0,
    command_id: str = "c1",
) -> BridgeCommand:
    return BridgeCommand(
        command_id=command_id,
        site_id=site_id,
        kind=kind,
        event_time=T0,
        valid_until=T0 + timedelta(seconds=valid_s),
        power_kw=power_kw if kind is CommandKind.SET_POWER else None,
    )


LIMITS = power_limits(SITE, LiveLimits(soc_pct=50.0))


@pytest.mark.parametrize(
    ("live", "map_d", "map_c", "expected"),
    [
        (LiveLimits(), None, None, (6.0, 5.0, Cause.SITE_LIMIT, Cause.SITE_LIMIT)),
        (LiveLimits(), 4.0, None, (4.0, 5.0, Cause.RATED_LIMIT, Cause.SITE_LIMIT)),
        (LiveLimits(soc_pct=10.0), None, None, (0.0, 5.0, Cause.SOC_LIMIT, Cause.SITE_LIMIT)),
        (LiveLimits(soc_pct=5.0), None, None, (0.0, 5.0, Cause.SOC_LIMIT, Cause.SITE_LIMIT)),
        (LiveLimits(soc_pct=90.0), None, None, (6.0, 0.0, Cause.SITE_LIMIT, Cause.SOC_LIMIT)),
        (
            LiveLimits(soc_pct=50, bms_max_charge_kw=2.0, bms_max_discharge_kw=-1.0),
            None,
            None,
            (0.0, 2.0, Cause.RATED_LIMIT, Cause.RATED_LIMIT),
        ),
    ],
)
def test_power_limits_table(
    live: LiveLimits,
    map_d: float | None,
    map_c: float | None,
    expected: tuple[float, float, Cause, Cause],
) -> None:
    lim = power_limits(SITE, live, map_d, map_c)
    assert (lim.max_discharge_kw, lim.max_charge_kw, lim.discharge_cause, lim.charge_cause) == (
        expected
    )


@pytest.mark.parametrize(
    ("command", "now", "expected"),
    [
        (cmd(site_id="s2"), T0, Rejected(Refusal.FOREIGN_SITE, "site 's2' is not served here")),
        (cmd(valid_s=1), T0 + timedelta(seconds=1), Refusal.EXPIRED),
        (cmd(valid_s=1), T0 + timedelta(seconds=5), Refusal.EXPIRED),
        (cmd(power_kw=3.0), T0, (3.0, 3.0, None)),
        (cmd(power_kw=9.0), T0, (9.0, 6.0, Cause.SITE_LIMIT)),
        (cmd(power_kw=-7.5), T0, (-7.5, -5.0, Cause.SITE_LIMIT)),
        (cmd(kind=CommandKind.STOP), T0, (None, None, None)),
        (cmd(kind=CommandKind.SAFE_MODE), T0, (None, None, None)),
    ],
)
def test_gate_table(command: BridgeCommand, now: datetime, expected: object) -> None:
    decision = check(command, SITE, now, LIMITS)
    if isinstance(expected, Rejected):
        assert decision == expected
    elif isinstance(expected, Refusal):
        assert isinstance(decision, Rejected)
        assert decision.refusal is expected
    else:
        assert isinstance(decision, Accepted)
        assert (decision.requested_kw, decision.written_kw, decision.clamp_cause) == expected


def test_foreign_site_when_not_owned_at_all() -> None:
    decision = check(cmd(), None, T0, LIMITS)
    assert isinstance(decision, Rejected)
    assert decision.refusal is Refusal.FOREIGN_SITE


def test_discharge_at_reserve_min_is_clamped_to_zero() -> None:
    lim = power_limits(SITE, LiveLimits(soc_pct=9.0))
    decision = check(cmd(power_kw=4.0), SITE, T0, lim)
    assert isinstance(decision, Accepted)
    assert decision.written_kw == 0.0
    assert decision.clamp_cause is Cause.SOC_LIMIT
    assert decision.clamped


def test_set_power_without_limits_is_refused() -> None:
    decision = check(cmd(), SITE, T0, None)
    assert isinstance(decision, Rejected)
    assert decision.refusal is Refusal.INVALID


@pytest.mark.parametrize(
    "kwargs",
    [
        {"power_kw": None},
        {"power_kw": float("inf")},
        {"command_id": ""},
    ],
)
def test_bad_commands_raise(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "command_id": "c",
        "site_id": "s1",
        "kind": CommandKind.SET_POWER,
        "event_time": T0,
        "valid_until": T0,
        "power_kw": 1.0,
    }
    base.update(kwargs)
    with pytest.raises(BridgeInputError):
        BridgeCommand(**base)  # type: ignore[arg-type]  # deliberately loose test input


def test_naive_times_raise() -> None:
    with pytest.raises(BridgeInputError, match="timezone"):
        BridgeCommand("c", "s1", CommandKind.STOP, datetime(2026, 1, 1), T0)


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
limit = st.floats(min_value=0.0, max_value=1e3, allow_nan=False)
soc = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


@given(
    power=finite,
    soc_pct=soc,
    bms_c=st.none() | limit,
    bms_d=st.none() | limit,
    map_d=st.none() | limit,
)
def test_written_power_never_exceeds_any_bound(
    power: float, soc_pct: float, bms_c: float | None, bms_d: float | None, map_d: float | None
) -> None:
    lim = power_limits(SITE, LiveLimits(soc_pct, bms_c, bms_d), map_d, None)
    decision = check(cmd(power_kw=power), SITE, T0, lim)
    assert isinstance(decision, Accepted)
    w = decision.written_kw
    assert w is not None
    assert -SITE.battery.max_charge_kw <= w <= SITE.battery.max_discharge_kw
    assert abs(w) <= SITE.rated_power_kw
    if soc_pct <= SITE.soc_reserve_min_pct:
        assert w <= 0.0
    if soc_pct >= SITE.soc_reserve_max_pct:
        assert w >= 0.0
    if bms_d is not None:
        assert w <= bms_d
    if map_d is not None:
        assert w <= map_d
    # never written as is when outside: either equal to the request, or clamped and reported
    assert (w == power) != decision.clamped


@given(
    d=limit,
    c=limit,
    p=finite,
)
def test_headroom_is_nonnegative_and_consistent(d: float, c: float, p: float) -> None:
    lim = Bounds.of_limits(PowerLimits(d, c, Cause.SITE_LIMIT, Cause.SITE_LIMIT))
    up, down = headroom(lim, p, InForce())  # nothing in force: all of it is free
    assert up >= 0.0
    assert down >= 0.0
    if -c <= p <= d:
        assert up + down == pytest.approx(d + c)


@given(valid_s=st.floats(min_value=-100, max_value=100), elapsed_s=st.floats(0, 200))
def test_expired_never_accepted(valid_s: float, elapsed_s: float) -> None:
    decision = check(cmd(valid_s=valid_s), SITE, T0 + timedelta(seconds=elapsed_s), LIMITS)
    expired = T0 + timedelta(seconds=elapsed_s) >= T0 + timedelta(seconds=valid_s)
    assert isinstance(decision, Rejected) == expired
