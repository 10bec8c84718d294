"""Heartbeat bookkeeping: any plan that writes the heartbeat registers re-arms it, a standalone
heartbeat is due only after a whole period without one, and a command plan takes the heartbeat
along (after its own writes) once it is half a period old."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.hal.control import Heartbeat
from edge.hal.maps import load_all
from edge.hal.planner import PlanContext, drop_held, plan_command, plan_heartbeat
from edge.hal.points import Command, WritePlan
from edge.hal.registermap import RegisterMap

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PERIOD = 5.0


@functools.cache
def sungrow() -> RegisterMap:
    return load_all()["sungrow"]


@functools.cache
def heartbeat() -> WritePlan:
    plan = plan_heartbeat(sungrow(), PlanContext())
    assert plan is not None
    return plan


@functools.cache
def power_update(kw: float) -> WritePlan:
    """A set-power plan as the bridge sends it once the mode registers are held: trimmed."""
    rmap = sungrow()
    full = plan_command(rmap, Command.set_power(kw), PlanContext())
    held = {w.address + i: v for w in heartbeat().writes for i, v in enumerate(w.values)}
    return drop_held(full, held)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_heartbeat_addresses_of_the_maps() -> None:
    assert Heartbeat.addresses(heartbeat()) == {sungrow().point("ems_heartbeat").address}
    assert Heartbeat.addresses(None) == frozenset()
    assert plan_heartbeat(load_all()["huawei"]) is None  # Huawei: no heartbeat register


@pytest.mark.parametrize(
    ("written_s", "now_s", "due"),
    [
        (None, 0.0, True),  # never written
        (0.0, 0.0, False),
        (0.0, PERIOD - 0.001, False),
        (0.0, PERIOD, True),
        (10.0, 12.0, False),
        (10.0, 16.0, True),
    ],
)
def test_due_after_a_whole_period(written_s: float | None, now_s: float, due: bool) -> None:
    hb = Heartbeat(PERIOD)
    hb.written_at = None if written_s is None else at(written_s)
    assert hb.due(at(now_s)) is due


def test_a_command_sequence_with_the_heartbeat_re_arms_it() -> None:
    hb = Heartbeat(PERIOD)
    full = plan_command(sungrow(), Command.set_power(2.0), PlanContext())
    hb.wrote(full, heartbeat(), at(1.0))  # the whole sequence writes 13079 first
    assert hb.written_at == at(1.0)
    assert not hb.due(at(5.9))
    hb.wrote(power_update(1.0), heartbeat(), at(3.0))  # the trimmed update does not
    assert hb.written_at == at(1.0)
    hb.wrote(heartbeat(), None, at(4.0))  # a map without a heartbeat: nothing to track
    assert hb.written_at == at(1.0)


@pytest.mark.parametrize(
    ("written_s", "now_s", "carried"),
    [
        (None, 0.0, True),
        (0.0, PERIOD / 2 - 0.01, False),  # fresh: the update goes alone
        (0.0, PERIOD / 2, True),  # half a period old: it rides along
        (0.0, 4.0, True),
    ],
)
def test_ride_along_after_the_commands_own_writes(
    written_s: float | None, now_s: float, carried: bool
) -> None:
    hb = Heartbeat(PERIOD)
    hb.written_at = None if written_s is None else at(written_s)
    plan = power_update(-1.5)
    out = hb.ride_along(plan, heartbeat(), at(now_s))
    if carried:
        assert out.writes == plan.writes + heartbeat().writes  # appended, never ahead
        hb.wrote(out, heartbeat(), at(now_s))
        assert hb.written_at == at(now_s)
        assert hb.carried == 1
    else:
        assert out is plan
        assert hb.carried == 0


def test_ride_along_leaves_plans_alone_that_need_nothing() -> None:
    hb = Heartbeat(PERIOD)
    full = plan_command(sungrow(), Command.set_power(2.0), PlanContext())
    assert hb.ride_along(full, heartbeat(), T0) is full  # writes the heartbeat already
    empty = WritePlan(Command.set_power(2.0))
    assert hb.ride_along(empty, heartbeat(), T0) is empty  # nothing written: nothing to carry
    plan = power_update(1.0)
    assert hb.ride_along(plan, None, T0) is plan  # a map without a heartbeat


def test_bad_period_is_refused() -> None:
    with pytest.raises(ValueError, match="period"):
        Heartbeat(0.0)


@given(
    events=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=3.0), st.sampled_from(["cmd", "tick"])),
        max_size=60,
    )
)
def test_never_more_than_a_period_without_a_heartbeat(events: list[tuple[float, str]]) -> None:
    """Commands at any times and telemetry ticks (which write a standalone heartbeat when it is
    due): after every tick, the heartbeat is at most one period old; and a standalone one is
    only ever written when none went out for a whole period."""
    hb = Heartbeat(PERIOD)
    now = 0.0
    for step, kind in events:
        now += step
        t = at(now)
        if kind == "cmd":
            plan = hb.ride_along(power_update(1.0), heartbeat(), t)
            hb.wrote(plan, heartbeat(), t)
            continue
        if hb.due(t):
            before = hb.written_at
            assert before is None or (t - before).total_seconds() >= PERIOD
            hb.wrote(heartbeat(), heartbeat(), t)
        assert hb.written_at is not None
        assert (t - hb.written_at).total_seconds() < PERIOD
