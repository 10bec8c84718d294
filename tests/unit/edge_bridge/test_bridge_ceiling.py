"""A site's delivery ceilings (edge.bridge.ceiling): when a poll sees the battery short of its
target for the detection window (table), a read-back's ceiling, lifting it (the battery
follows again, or it was not seen short for the hold time), the room reported with it, and
what each product is reported to hold (tables); a compliant battery never gets one, and
what is reported held never exceeds what is in force (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.enums import CommandKind, Product
from contract.records import ReserveArm
from edge.bridge.bounds import Bounds
from edge.bridge.ceiling import CEILING_HOLD_S, DeliveryWatch, held_within
from edge.bridge.headroom import headroom, shortfalls
from edge.bridge.model import BridgeCommand, Cause, PowerLimits
from edge.bridge.stack import Arm, InForce, Order

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TOL = 0.25
WINDOW_S = 7.0
WIDE = Bounds.of_limits(PowerLimits(5.0, 5.0, Cause.RATED_LIMIT, Cause.RATED_LIMIT))


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def feed(watch: DeliveryWatch, polls: list[tuple[float, float, float, float]]) -> list[str]:
    """(seconds, target, baseline, measured) polls, once a second; the log lines."""
    said: list[str] = []
    for t, target, base, measured in polls:
        said += watch.sample(
            at(t),
            target,
            base,
            measured,
            tolerance_kw=TOL,
            window_s=WINDOW_S,
            cause=Cause.UNKNOWN,
        )
    return said


def overridden(seconds: int, asked: float = 1.0) -> list[tuple[float, float, float, float]]:
    """An inverter doing its own self-consumption (the baseline, moving with the load)
    while asked ``asked`` kW beyond it."""
    return [
        (t, 0.5 + 0.1 * (t % 3) + asked, 0.5 + 0.1 * (t % 3), 0.5 + 0.1 * (t % 3))
        for t in range(seconds)
    ]


# polls -> (up ceiling kW or None, down ceiling kW or None)
CASES = [
    ("overridden up for the window", overridden(9), (0.0, None)),
    ("overridden, not yet the window", overridden(7), (None, None)),
    ("overridden down", overridden(9, -2.0), (None, 0.0)),
    (
        "clamped at 0.6 of 2 kW",
        [(t, 3.0, 1.0, 1.6 - 0.05 * (t % 2)) for t in range(10)],
        (0.6, None),
    ),
    (
        "a compliant battery catching up with a 6 kW load step",
        [
            (
                t,
                7.0 if t >= 2 else 1.0,
                6.0 if t >= 2 else 0.0,
                7.0 - 6.0 * 0.4 ** max(0, t - 2) if t >= 2 else 1.0,
            )
            for t in range(15)
        ],
        (None, None),
    ),
    ("nothing asked beyond the baseline", [(t, 0.5, 0.5, 0.4) for t in range(15)], (None, None)),
    ("no target (safe mode)", [(t, None, 0.5, 0.0) for t in range(15)], (None, None)),
    (
        "short, then follows again",
        [*overridden(9), *[(t, 1.6, 0.6, 1.55) for t in range(9, 11)]],
        (None, None),
    ),
    (
        "short, then a lagging battery above a falling baseline: not following, no lift",
        [*overridden(9), *[(t, 0.6, 0.6, 1.5) for t in range(9, 11)]],
        (0.0, None),
    ),
    (
        "short, then not asked (share moved away) for less than the hold time",
        [*overridden(9), *[(t, 0.6, 0.6, 0.6) for t in range(9, 60)]],
        (0.0, None),
    ),
    (
        "short, then not asked beyond the hold time",
        [*overridden(9), *[(t, 0.6, 0.6, 0.6) for t in range(9, 9 + int(CEILING_HOLD_S) + 2)]],
        (None, None),
    ),
]


@pytest.mark.parametrize(("polls", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_poll_ceilings(
    polls: list[tuple[float, float | None, float, float]],
    expected: tuple[float | None, float | None],
) -> None:
    watch = DeliveryWatch()
    said = feed(watch, polls)  # type: ignore[arg-type]  # None targets in one case
    up, down = watch.ceilings(at(polls[-1][0]))
    got = (None if up is None else up.kw, None if down is None else down.kw)
    assert got == pytest.approx(expected), said
    if up is not None or down is not None:
        assert any("ceiling" in line for line in said)


def test_a_read_back_sets_the_ceiling_at_once_and_the_room_is_reported_within_it() -> None:
    watch = DeliveryWatch()
    assert watch.observed(T0, 1.4, 1.4, 1.2, tolerance_kw=TOL, cause=Cause.MODE) is None
    c = watch.observed(T0, 2.4, 1.4, 1.5, tolerance_kw=TOL, cause=Cause.MODE)
    assert c is not None
    assert c.kw == pytest.approx(0.1)
    assert c.asked_kw == pytest.approx(1.0)
    assert c.cause is Cause.MODE
    narrowed = watch.narrow(WIDE, 1.4, at(1))
    assert narrowed.max_kw == pytest.approx(1.5)
    assert narrowed.up_cause is Cause.MODE
    assert (narrowed.min_kw, narrowed.down_cause) == (WIDE.min_kw, WIDE.down_cause)
    assert watch.narrow(WIDE, 1.4, at(CEILING_HOLD_S + 1)) == WIDE


def _cmd(kind: CommandKind, reserve: ReserveArm | None = None, kw: float = 0.0) -> BridgeCommand:
    product = None if reserve is not None else Product.MFRR
    power = None if reserve is not None else kw
    valid = T0 + timedelta(seconds=60)
    return BridgeCommand(
        f"c-{kind}", "s1", kind, T0, valid, power_kw=power, reserve=reserve, product=product
    )


def _in_force(mfrr_kw: float, fcrd_up_kw: float = 0.0) -> InForce:
    out = InForce().with_order(Order(Product.MFRR, mfrr_kw, _cmd(CommandKind.ORDER, kw=mfrr_kw)))
    if fcrd_up_kw > 0:
        params = ReserveArm(Product.FCR_D_UP, fcrd_up_kw, 49.9, 49.5)
        out = out.with_arm(Arm(params, _cmd(CommandKind.ARM_RESERVE, params)))
    return out


# (MFRR order kW, FCR-D up kW, up ceiling kW) -> (headroom up, FCR-D up held, MFRR held):
# the cut is charged in SvK's order of limitation (FCR-D first)
HELD = [
    (1.0, 0.0, 0.0, (0.0, 0.0, 0.0)),
    (1.0, 0.0, 0.4, (0.0, 0.0, 0.4)),
    (1.0, 0.0, 1.5, (0.5, 0.0, 1.0)),
    (1.0, 2.0, 1.5, (0.0, 0.5, 1.0)),
    (1.0, 2.0, 0.5, (0.0, 0.0, 0.5)),
    (-1.0, 0.0, 0.0, (0.0, 0.0, -1.0)),  # an order down is not cut by an up ceiling
]


@pytest.mark.parametrize(("mfrr", "fcrd", "ceiling", "expected"), HELD)
def test_what_the_products_are_reported_to_hold_within_a_ceiling(
    mfrr: float, fcrd: float, ceiling: float, expected: tuple[float, float, float]
) -> None:
    in_force = _in_force(mfrr, fcrd)
    base = 1.0
    watch = DeliveryWatch()
    assert watch.observed(T0, base + 3.0, base, base + ceiling, tolerance_kw=TOL, cause=Cause.MODE)
    reported = watch.narrow(WIDE, base, T0)
    up, _ = headroom(reported, base, in_force)
    armed, orders = held_within(in_force, shortfalls(reported, base, in_force))
    got = (up, armed.get(Product.FCR_D_UP, 0.0), orders[Product.MFRR])
    assert got == pytest.approx(expected)


@given(
    st.lists(
        st.tuples(
            st.floats(-5.0, 5.0),  # target beyond the baseline
            st.floats(-3.0, 3.0),  # baseline
            st.floats(-1.0, 1.0),  # tracking error, as a fraction of the tolerance
        ),
        max_size=60,
    )
)
def test_a_battery_within_tolerance_of_its_target_never_gets_a_ceiling(
    polls: list[tuple[float, float, float]],
) -> None:
    watch = DeliveryWatch()
    for i, (asked, base, err) in enumerate(polls):
        watch.sample(
            at(i),
            base + asked,
            base,
            base + asked + err * TOL,
            tolerance_kw=TOL,
            window_s=WINDOW_S,
            cause=Cause.UNKNOWN,
        )
        assert watch.ceilings(at(i)) == (None, None)


@given(
    st.floats(-4.0, 4.0),
    st.floats(0.0, 4.0),
    st.floats(0.0, 6.0),
    st.floats(-3.0, 3.0),
)
def test_reported_holdings_never_exceed_what_is_in_force(
    mfrr: float, fcrd: float, ceiling: float, base: float
) -> None:
    in_force = _in_force(mfrr, fcrd)
    watch = DeliveryWatch()
    watch.observed(T0, base + 9.0, base, base + ceiling, tolerance_kw=0.0, cause=Cause.MODE)
    reported = watch.narrow(WIDE, base, T0)
    armed, orders = held_within(in_force, shortfalls(reported, base, in_force))
    assert 0.0 <= armed.get(Product.FCR_D_UP, 0.0) <= fcrd
    held = orders[Product.MFRR]
    assert abs(held) <= abs(mfrr) + 1e-12
    assert held == 0.0 or (held > 0) == (mfrr > 0)
