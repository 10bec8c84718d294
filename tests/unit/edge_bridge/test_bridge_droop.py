"""Edge-local droop: SvK curves, dead band, bounds, expiry, arming by product, fast-loop writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.bridge.droop import ReserveController, fast_write_due, needs_write, response_kw
from edge.bridge.model import BridgeInputError, Cause, PowerLimits, Product, ReserveParams

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FCRD_UP = ReserveParams(Product.FCR_D_UP, 4.0, 49.9, 49.5)
FCRD_DOWN = ReserveParams(Product.FCR_D_DOWN, 4.0, 50.1, 50.5)
FCRN = ReserveParams(Product.FCR_N, 2.0, 50.0, 49.9, symmetric=True)
FFR = ReserveParams(Product.FFR, 5.0, 49.7, 49.7)
DB = ReserveParams(Product.FCR_N, 2.0, 50.0, 49.9, deadband_hz=0.01, symmetric=True)
WIDE = PowerLimits(10.0, 10.0, Cause.SITE_LIMIT, Cause.SITE_LIMIT)


@pytest.mark.parametrize(
    ("params", "f", "kw"),
    [
        (FCRD_UP, 50.0, 0.0),
        (FCRD_UP, 49.9, 0.0),
        (FCRD_UP, 49.7, 2.0),
        (FCRD_UP, 49.5, 4.0),
        (FCRD_UP, 49.0, 4.0),
        (FCRD_UP, 50.3, 0.0),
        (FCRD_DOWN, 50.0, 0.0),
        (FCRD_DOWN, 50.3, -2.0),
        (FCRD_DOWN, 50.6, -4.0),
        (FCRD_DOWN, 49.5, 0.0),
        (FCRN, 50.0, 0.0),
        (FCRN, 49.95, 1.0),
        (FCRN, 49.9, 2.0),
        (FCRN, 50.05, -1.0),
        (FCRN, 50.2, -2.0),
        (FFR, 49.71, 0.0),
        (FFR, 49.7, 5.0),
        (FFR, 49.2, 5.0),
        (DB, 49.995, 0.0),
        (DB, 50.009, 0.0),
        (DB, 49.95, 1.0),
    ],
)
def test_response_table(params: ReserveParams, f: float, kw: float) -> None:
    assert response_kw(params, f) == pytest.approx(kw)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"product": Product.FCR_D_UP, "f_start_hz": 49.5, "f_full_hz": 49.9},
        {"product": Product.FCR_D_DOWN, "f_start_hz": 50.5, "f_full_hz": 50.1},
        {"product": Product.FCR_N, "f_start_hz": 50.0, "f_full_hz": 50.0},
        {"product": Product.AFRR},
        {"product": Product.NONE},
        {"capacity_kw": -1.0},
        {"deadband_hz": -0.1},
        {"deadband_hz": 0.5},
        {"f_start_hz": 70.0},
        {"capacity_kw": float("nan")},
        {"product": Product.FFR, "f_start_hz": 49.7, "f_full_hz": 49.8},
    ],
)
def test_bad_params(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "product": Product.FCR_D_UP,
        "capacity_kw": 1.0,
        "f_start_hz": 49.9,
        "f_full_hz": 49.5,
    }
    base.update(kwargs)
    with pytest.raises(BridgeInputError):
        ReserveParams(**base)  # type: ignore[arg-type]  # deliberately loose test input


def test_bad_frequency() -> None:
    with pytest.raises(BridgeInputError, match="frequency"):
        response_kw(FCRD_UP, float("nan"))


def test_controller_adds_bounds_and_disarms() -> None:
    ctl = ReserveController()
    assert ctl.target(1.0, 49.5, T0, WIDE).total_kw == 1.0
    ctl.arm(FCRD_UP, T0 + timedelta(seconds=60), "arm-1")
    assert ctl.product(T0) is Product.FCR_D_UP
    t = ctl.target(1.0, 49.5, T0, WIDE)
    assert (t.total_kw, t.reserve_kw, t.bounded) == (5.0, 4.0, False)
    tight = PowerLimits(3.0, 3.0, Cause.SOC_LIMIT, Cause.SITE_LIMIT)
    t = ctl.target(1.0, 49.5, T0, tight)
    assert (t.total_kw, t.bounded) == (3.0, True)
    assert ctl.target(1.0, None, T0, WIDE).total_kw == 1.0
    assert not ctl.expire(T0 + timedelta(seconds=59))
    assert ctl.expire(T0 + timedelta(seconds=60))
    assert ctl.target(1.0, 49.5, T0 + timedelta(seconds=61), WIDE).total_kw == 1.0
    assert ctl.product(T0) is Product.NONE
    ctl.arm(FCRD_UP, T0 + timedelta(seconds=60), "arm-2")
    ctl.disarm()
    assert ctl.armed is None


@pytest.mark.parametrize(
    ("last", "target", "write"), [(None, 0.0, True), (1.0, 1.04, False), (1.0, 1.1, True)]
)
def test_needs_write(last: float | None, target: float, write: bool) -> None:
    assert needs_write(last, target, 0.05) is write


freq = st.floats(min_value=45.0, max_value=55.0, allow_nan=False)


@given(f1=freq, f2=freq)
def test_fcrd_up_monotone_and_bounded(f1: float, f2: float) -> None:
    lo, hi = sorted((f1, f2))
    r_lo, r_hi = response_kw(FCRD_UP, lo), response_kw(FCRD_UP, hi)
    assert 0.0 <= r_hi <= r_lo <= FCRD_UP.capacity_kw


@given(f=freq)
def test_down_mirrors_up(f: float) -> None:
    assert response_kw(FCRD_DOWN, 100.0 - f) == pytest.approx(-response_kw(FCRD_UP, f))


@given(f=freq)
def test_fcrn_is_odd_around_50(f: float) -> None:
    assert response_kw(FCRN, 100.0 - f) == pytest.approx(-response_kw(FCRN, f), abs=1e-9)


@given(base=st.floats(-20, 20), f=freq, d=st.floats(0, 10), c=st.floats(0, 10))
def test_total_always_within_limits(base: float, f: float, d: float, c: float) -> None:
    ctl = ReserveController()
    ctl.arm(FCRN, T0 + timedelta(minutes=1), "a")
    t = ctl.target(base, f, T0, PowerLimits(d, c, Cause.SITE_LIMIT, Cause.SITE_LIMIT))
    assert -c <= t.total_kw <= d


def test_arming_replaces_the_armed_reserve() -> None:
    """One reserve at a time (an ARM_RESERVE carries one product): a second arm replaces the
    first, whatever its product, and the target holds only the new one's response."""
    ctl = ReserveController()
    ctl.arm(FCRD_UP, T0 + timedelta(seconds=60), "up")
    ctl.arm(FCRD_DOWN, T0 + timedelta(seconds=30), "down")
    armed = ctl.armed
    assert armed is not None
    assert armed.command_id == "down"
    assert ctl.product(T0) is Product.FCR_D_DOWN
    assert ctl.target(0.0, 49.5, T0, WIDE).total_kw == 0.0  # FCR-D up is gone: no response
    assert ctl.target(0.0, 50.5, T0, WIDE).total_kw == -4.0
    assert ctl.expire(T0 + timedelta(seconds=30))
    assert ctl.armed is None
    assert not ctl.expire(T0 + timedelta(seconds=61))  # nothing left to expire


# (last written kW, target kW, deadband kW, s since the last write, write gap s, write now?)
FAST_WRITES = [
    (None, 1.0, 0.05, 10.0, 0.5, True),  # nothing written yet
    (1.0, 1.04, 0.05, 10.0, 0.5, False),  # inside the deadband
    (1.0, 1.05, 0.05, 10.0, 0.5, True),
    (1.0, 3.0, 0.05, 0.3, 0.5, False),  # the map's write gap has not passed
    (1.0, 3.0, 0.05, 0.5, 0.5, True),
    (1.0, -3.0, 0.05, 0.0, 0.0, True),
]


@pytest.mark.parametrize("case", FAST_WRITES)
def test_fast_write_due(case: tuple[float | None, float, float, float, float, bool]) -> None:
    last, target, step, since, gap, due = case
    assert fast_write_due(last, target, step, since, gap) is due
