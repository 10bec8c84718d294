"""Held registers: a write the device already holds is left out; what remains leaves the device
exactly as the whole plan would; trust expires, is forgotten, and never widens what is written."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.hal.control import HeldRegisters
from edge.hal.maps import load_all
from edge.hal.planner import PlanContext, drop_held, plan_command
from edge.hal.points import Command, RegisterWrite, WritePlan

MAPS = load_all()
CTX = PlanContext(rated_power_kw=10.0)


def addresses(plan: WritePlan) -> list[int]:
    return [w.address for w in plan.writes]


def held_after(plan: WritePlan) -> dict[int, int]:
    return {w.address + i: v for w in plan.writes for i, v in enumerate(w.values)}


# (oem, first command, second command, addresses the second still writes)
CASES = [
    # Huawei: only the discharge power register changes; period, setting mode, cmd are held
    ("huawei", Command.set_power(3.0), Command.set_power(2.0), [47249]),
    # discharge -> charge: the charge power and the command register change
    ("huawei", Command.set_power(3.0), Command.set_power(-2.0), [47247, 47100]),
    # Sungrow: the heartbeat is held; the mode/cmd/power block has a changed register
    ("sungrow", Command.set_power(3.0), Command.set_power(2.0), [13049]),
    # SAJ: per-mille power only; passive enable and AppMode 3 are held
    ("saj", Command.set_power(3.0), Command.set_power(2.5), [0x363A]),
    ("saj", Command.set_power(3.0), Command.set_power(-1.0), [0x3639, 0x3636]),
    # the same set-power again: nothing to write
    ("saj", Command.set_power(3.0), Command.set_power(3.0), []),
    # safe mode after set-power: the whole safe sequence differs
    ("saj", Command.set_power(3.0), Command.safe_mode(), [0x3636, 0x3647]),
]


@pytest.mark.parametrize(("oem", "first", "second", "want"), CASES)
def test_drop_held_per_oem(oem: str, first: Command, second: Command, want: list[int]) -> None:
    rmap = MAPS[oem]
    held = held_after(plan_command(rmap, first, CTX))
    full = plan_command(rmap, second, CTX)
    assert addresses(drop_held(full, held)) == want


def test_nothing_held_keeps_the_plan() -> None:
    plan = plan_command(MAPS["huawei"], Command.set_power(1.0), CTX)
    assert drop_held(plan, {}) is plan


write = st.builds(
    RegisterWrite,
    fc=st.just(16),
    address=st.integers(0, 20),
    values=st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple),
    points=st.just(("p",)),
    delay_after_s=st.sampled_from([0.0, 0.5]),
)


@settings(max_examples=200)
@given(
    writes=st.lists(write, max_size=6),
    held=st.dictionaries(st.integers(0, 25), st.integers(0, 3), max_size=15),
)
def test_trimmed_plan_leaves_the_device_as_the_whole_plan(
    writes: list[RegisterWrite], held: dict[int, int]
) -> None:
    plan = WritePlan(Command.set_power(1.0), tuple(writes))
    trimmed = drop_held(plan, held)

    def apply(p: WritePlan) -> dict[int, int]:
        regs = dict(held)
        for w in p.writes:
            for i, v in enumerate(w.values):
                regs[w.address + i] = v
        return regs

    assert apply(trimmed) == apply(plan)
    # only ever removes writes, in order, never invents one
    it = iter(plan.writes)
    assert all(any(w is x for x in it) for w in trimmed.writes)


def test_held_registers_expire_and_forget() -> None:
    now = [0.0]
    held = HeldRegisters(max_age_s=30.0, clock=lambda: now[0])
    rmap = MAPS["saj"]
    first = plan_command(rmap, Command.set_power(3.0), CTX)
    second = plan_command(rmap, Command.set_power(2.0), CTX)
    assert held.trim(second) is second  # nothing written yet: nothing trusted
    held.wrote(first)
    assert addresses(held.trim(second)) == [0x363A]
    assert held.skipped == 2
    now[0] = 30.0  # too old to trust: the whole sequence again
    assert held.trim(second) == second
    held.wrote(first)
    held.forget()  # e.g. the inverter left remote control
    assert held.trim(second) == second


def test_disabled_and_bad_age() -> None:
    held = HeldRegisters(max_age_s=0.0)
    plan = plan_command(MAPS["saj"], Command.set_power(3.0), CTX)
    held.wrote(plan)
    assert held.trim(plan) is plan
    with pytest.raises(ValueError, match="max_age_s"):
        HeldRegisters(max_age_s=-1.0)
