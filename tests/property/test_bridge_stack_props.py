"""Stacked products at one site, for any baseline, limits, load and commands (hypothesis):

* the power written stays within every limit (battery, inverter, SoC, grid connection);
* every product admitted fits its reservation: at full activation of all of them at once, up
  (49.0 Hz) and down (50.6 Hz), nothing is cut, and their energy fits the battery's;
* delivered = total - baseline, and the cut (if any) is charged to FCR-D first.

Commands go through the bridge's own arithmetic (:func:`edge.bridge.effects.effect`: admission,
replacement by product, order changes, setpoints leaving room), as the pipeline applies them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.enums import CommandKind, Product
from contract.products import CURVES
from contract.records import ReserveArm
from edge.bridge.baseline import baseline
from edge.bridge.bounds import Bounds, EnergyRoom, bounds
from edge.bridge.effects import Room, effect
from edge.bridge.headroom import headroom, reserved_energy, shortfalls
from edge.bridge.model import FREQUENCY_PRODUCTS, BridgeCommand, Cause, PowerLimits
from edge.bridge.stack import LIMITATION_ORDER, InForce, compose

T0 = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
EPS = 1e-6
kw = st.floats(min_value=0.0, max_value=15.0, allow_nan=False)
signed = st.floats(min_value=-20.0, max_value=20.0, allow_nan=False)
frequency = st.floats(min_value=48.0, max_value=52.0, allow_nan=False)


def arm_of(product: Product, capacity: float) -> ReserveArm:
    curve = CURVES[product]
    assert curve.f_start_hz is not None
    assert curve.f_full_hz is not None
    return ReserveArm(product, capacity, curve.f_start_hz, curve.f_full_hz, 0.0, curve.symmetric)


@st.composite
def commands(draw: st.DrawFn) -> list[BridgeCommand]:
    out = []
    for i in range(draw(st.integers(0, 10))):
        kind = draw(
            st.sampled_from(
                [
                    CommandKind.ARM_RESERVE,
                    CommandKind.ARM_RESERVE,
                    CommandKind.ORDER,
                    CommandKind.DISARM_RESERVE,
                    CommandKind.SET_POWER,
                ]
            )
        )
        at = T0 + timedelta(seconds=i)
        until = T0 + timedelta(minutes=15)
        cid = f"c{i}"
        if kind is CommandKind.ARM_RESERVE:
            arm = arm_of(draw(st.sampled_from(FREQUENCY_PRODUCTS)), draw(kw))
            out.append(BridgeCommand(cid, "s", kind, at, until, reserve=arm))
        elif kind is CommandKind.ORDER:
            product = draw(st.sampled_from([Product.AFRR, Product.MFRR]))
            delta = draw(st.floats(-10.0, 10.0, allow_nan=False))
            out.append(BridgeCommand(cid, "s", kind, at, until, power_kw=delta, product=product))
        elif kind is CommandKind.DISARM_RESERVE:
            product = draw(st.sampled_from(FREQUENCY_PRODUCTS))
            out.append(BridgeCommand(cid, "s", kind, at, until, product=product))
        else:
            out.append(BridgeCommand(cid, "s", kind, at, until, power_kw=draw(signed)))
    return out


Site = tuple[Bounds, EnergyRoom, float | None, float, float]


@st.composite
def sites(draw: st.DrawFn) -> Site:
    limits = PowerLimits(draw(kw), draw(kw), Cause.SITE_LIMIT, Cause.RATED_LIMIT)
    load, pv = draw(kw), draw(st.floats(0.0, 10.0, allow_nan=False))
    within = bounds(
        limits,
        import_max_kw=draw(st.none() | st.floats(1.0, 20.0, allow_nan=False)),
        export_max_kw=draw(st.none() | st.floats(0.0, 20.0, allow_nan=False)),
        load_kw=load,
        pv_kw=pv,
    )
    energy = EnergyRoom.of(
        draw(st.floats(0.0, 100.0, allow_nan=False)),
        draw(st.none() | st.floats(1.0, 30.0, allow_nan=False)),
        10.0,
        95.0,
    )
    scheduled = draw(st.none() | signed)
    return within, energy, scheduled, load, pv


def apply_all(cmds: list[BridgeCommand], site: Site) -> tuple[InForce, float]:
    """Every command as the pipeline applies them; what is in force and its baseline."""
    within, energy, scheduled, load, pv = site
    in_force = InForce()

    def base(held: InForce) -> float:
        setpoint = None if held.held is None else held.held.power_kw
        return baseline(
            within, setpoint_kw=setpoint, scheduled=scheduled, load_kw=load, pv_kw=pv
        ).kw

    for cmd in cmds:
        eff = effect(cmd, in_force, Room(base(in_force), within, energy), cmd.event_time)
        assert not isinstance(eff, str)  # issued in order: nothing refused
        in_force = eff.in_force
    return in_force, base(in_force)


@settings(max_examples=300, deadline=None)
@given(site=sites(), cmds=commands(), f=frequency)
def test_stacked_products_stay_within_every_limit_and_fit_their_reservations(
    site: Site,
    cmds: list[BridgeCommand],
    f: float,
) -> None:
    within, energy = site[0], site[1]
    in_force, base = apply_all(cmds, site)
    assert within.min_kw - EPS <= base <= within.max_kw + EPS
    # the written total at any frequency: within every limit; delivered = total - baseline
    t = compose(base, in_force, f, within)
    assert within.min_kw - EPS <= t.total_kw <= within.max_kw + EPS
    assert sum(t.delivered.values()) == pytest.approx(t.total_kw - base, abs=1e-6)
    # each product's full activation fits its reservation: all of them at once, either way
    for full in (49.0, 50.6):
        at_full = compose(base, in_force, full, within)
        for p, wanted in at_full.wanted.items():  # nothing cut (but float rounding)
            assert at_full.delivered[p] == pytest.approx(wanted, abs=1e-9), (full, p, within)
    up, down = in_force.reserved()
    assert base + up <= within.max_kw + EPS
    assert base - down >= within.min_kw - EPS
    room_up, room_down = headroom(within, base, in_force)
    assert room_up == pytest.approx(max(0.0, within.max_kw - base - up), abs=1e-9)
    assert room_down == pytest.approx(max(0.0, base - within.min_kw - down), abs=1e-9)
    assert shortfalls(within, base, in_force) == {}
    # and their limited-energy reservations fit the battery's energy
    e_up, e_down = reserved_energy(in_force, T0 + timedelta(seconds=len(cmds)))
    if energy.up_kwh is not None and energy.down_kwh is not None:
        assert e_up <= energy.up_kwh + 1e-6
        assert e_down <= energy.down_kwh + 1e-6


@settings(max_examples=300, deadline=None)
@given(site=sites(), cmds=commands(), f=frequency, shrink=st.floats(0.0, 15.0))
def test_a_shortfall_after_arming_is_charged_to_fcr_d_first(
    site: Site,
    cmds: list[BridgeCommand],
    f: float,
    shrink: float,
) -> None:
    """The bounds shrink after arming (a load spike, the SoC reserve): the total stays within
    them, and a product later in SvK's order of limitation loses nothing while one earlier in
    it still delivers something in the direction of the cut."""
    within = site[0]
    in_force, base = apply_all(cmds, site)
    tight = Bounds(
        max(0.0, within.max_kw - shrink),
        min(0.0, within.min_kw + shrink),
        Cause.GRID_LIMIT,
        Cause.GRID_LIMIT,
    )
    base = tight.clamp(base)[0]
    t = compose(base, in_force, f, tight)
    assert tight.min_kw - EPS <= t.total_kw <= tight.max_kw + EPS
    assert sum(t.delivered.values()) == pytest.approx(t.total_kw - base, abs=1e-6)
    cut = [p for p in LIMITATION_ORDER if abs(t.delivered.get(p, 0.0) - t.wanted.get(p, 0.0)) > EPS]
    for p in cut:
        later = LIMITATION_ORDER[LIMITATION_ORDER.index(p) + 1 :]
        for q in later:
            if q in cut:
                # q was cut too: then p, earlier, has nothing left in q's direction
                sign = 1.0 if t.wanted[q] > 0 else -1.0
                assert t.delivered[p] * sign <= EPS


@settings(max_examples=300, deadline=None)
@given(
    d=kw,
    c=kw,
    up=st.floats(0.0, 30.0, allow_nan=False),
    down=st.floats(0.0, 30.0, allow_nan=False),
    power=signed,
)
def test_a_setpoint_is_always_within_the_bounds(
    d: float, c: float, up: float, down: float, power: float
) -> None:
    """Even where what is armed no longer fits (over-committed), a SET_POWER stays within the
    bounds, and where it all fits it leaves room for every full activation."""
    from edge.bridge.headroom import admit_setpoint
    from edge.bridge.stack import Arm, Order

    within = Bounds(d, -c, Cause.SITE_LIMIT, Cause.SITE_LIMIT)
    at, until = T0, T0 + timedelta(minutes=15)
    arm_cmd = BridgeCommand(
        "a", "s", CommandKind.ARM_RESERVE, at, until, reserve=arm_of(Product.FCR_D_UP, up)
    )
    order_cmd = BridgeCommand(
        "o", "s", CommandKind.ORDER, at, until, power_kw=-down, product=Product.MFRR
    )
    held = InForce(held=None).with_arm(Arm(arm_of(Product.FCR_D_UP, up), arm_cmd))
    held = held.with_order(Order(Product.MFRR, -down, order_cmd))
    got = admit_setpoint(power, held, within)
    assert -c - EPS <= got.kw <= d + EPS
    if (d - up) >= (-c + down):
        assert -c + down - EPS <= got.kw <= d - up + EPS
    if not got.clamped:  # never moved without saying so
        assert got.kw == power
