"""Edge-local droop: SvK curves, dead band, bounds, expiry, arming by product, fast-loop writes
(the droop's curve, and what is in force summed by :func:`edge.bridge.stack.compose`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.enums import CommandKind, Product
from contract.records import ReserveArm
from edge.bridge.bounds import Bounds
from edge.bridge.droop import fast_write_due, needs_write, response_kw
from edge.bridge.model import BridgeCommand, BridgeInputError, Cause, PowerLimits, check_reserve
from edge.bridge.stack import Arm, InForce, compose

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FCRD_UP = ReserveArm(Product.FCR_D_UP, 4.0, 49.9, 49.5)
FCRD_DOWN = ReserveArm(Product.FCR_D_DOWN, 4.0, 50.1, 50.5)
FCRN = ReserveArm(Product.FCR_N, 2.0, 50.0, 49.9, symmetric=True)
FFR = ReserveArm(Product.FFR, 5.0, 49.7, 49.7)
DB = ReserveArm(Product.FCR_N, 2.0, 50.0, 49.9, deadband_hz=0.01, symmetric=True)
WIDE = Bounds.of_limits(PowerLimits(10.0, 10.0, Cause.SITE_LIMIT, Cause.SITE_LIMIT))


def arm(params: ReserveArm, command_id: str, valid_s: float = 60.0) -> Arm:
    cmd = BridgeCommand(
        command_id,
        "s1",
        CommandKind.ARM_RESERVE,
        T0,
        T0 + timedelta(seconds=valid_s),
        reserve=params,
    )
    return Arm(params, cmd)


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
def test_response_table(params: ReserveArm, f: float, kw: float) -> None:
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
        check_reserve(ReserveArm(**base))  # type: ignore[arg-type]  # deliberately loose input


def test_bad_frequency() -> None:
    with pytest.raises(BridgeInputError, match="frequency"):
        response_kw(FCRD_UP, float("nan"))


def test_composition_adds_bounds_and_expires() -> None:
    nothing = InForce()
    assert compose(1.0, nothing, 49.5, WIDE).total_kw == 1.0
    held = nothing.with_arm(arm(FCRD_UP, "arm-1"))
    assert held.first_armed() is Product.FCR_D_UP
    t = compose(1.0, held, 49.5, WIDE)
    assert (t.total_kw, t.reserve_kw, t.bounded) == (5.0, 4.0, False)
    tight = Bounds.of_limits(PowerLimits(3.0, 3.0, Cause.SOC_LIMIT, Cause.SITE_LIMIT))
    t = compose(1.0, held, 49.5, tight)
    assert (t.total_kw, t.bounded, t.cause) == (3.0, True, Cause.SOC_LIMIT)
    assert t.delivered[Product.FCR_D_UP] == pytest.approx(2.0)  # what the bound left it
    assert compose(1.0, held, None, WIDE).total_kw == 1.0
    assert held.expire(T0 + timedelta(seconds=59)) is held
    gone = held.expire(T0 + timedelta(seconds=60))
    assert gone.empty
    assert compose(1.0, gone, 49.5, WIDE).total_kw == 1.0
    assert gone.first_armed() is Product.NONE
    assert held.without_arm(Product.FCR_D_UP).empty


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
    held = InForce().with_arm(arm(FCRN, "a"))
    limits = Bounds.of_limits(PowerLimits(d, c, Cause.SITE_LIMIT, Cause.SITE_LIMIT))
    t = compose(base, held, f, limits)
    assert -c <= t.total_kw <= d


def test_arming_replaces_the_same_product_and_keeps_the_others() -> None:
    """An ARM_RESERVE carries one product: a second arm of that product replaces the first;
    an arm of another product is added, and the target holds every armed product's response
    at once (FCR-D up at low frequency, FCR-D down at high frequency)."""
    held = InForce().with_arm(arm(FCRD_UP, "up", 60.0))
    held = held.with_arm(arm(FCRD_DOWN, "down", 30.0))
    assert set(held.arms) == {Product.FCR_D_UP, Product.FCR_D_DOWN}
    assert compose(0.0, held, 49.5, WIDE).total_kw == 4.0
    assert compose(0.0, held, 50.5, WIDE).total_kw == -4.0
    again = held.with_arm(arm(ReserveArm(Product.FCR_D_UP, 1.0, 49.9, 49.5), "up-2", 60.0))
    assert again.arms[Product.FCR_D_UP].cmd.command_id == "up-2"
    assert compose(0.0, again, 49.5, WIDE).total_kw == 1.0  # only the newer up arm
    later = again.expire(T0 + timedelta(seconds=30))
    assert set(later.arms) == {Product.FCR_D_UP}  # FCR-D down expired, FCR-D up stays
    assert later.expire(T0 + timedelta(seconds=61)).empty


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
