"""Write plans: exact register writes per OEM and command, refusals before any I/O."""

from __future__ import annotations

import pytest

from edge.hal.errors import WriteRefusedError
from edge.hal.maps import MAPS_DIR, load_map
from edge.hal.planner import PlanContext, plan_command, plan_heartbeat
from edge.hal.points import Command
from edge.hal.registermap import RegisterMap


def _map(oem: str) -> RegisterMap:
    return load_map(MAPS_DIR / f"{oem}.yaml")


def _writes(
    plan_oem: str, cmd: Command, ctx: PlanContext | None = None
) -> list[tuple[int, int, tuple[int, ...]]]:
    plan = plan_command(_map(plan_oem), cmd, ctx)
    return [(w.fc, w.address, w.values) for w in plan.writes]


CASES = [
    ("huawei", Command.set_power(-3.0), None,
     [(16, 47247, (0, 3000)), (6, 47083, (30,)), (6, 47246, (0,)), (6, 47100, (1,))]),
    ("huawei", Command.set_power(4.2, duration_min=5), None,
     [(16, 47249, (0, 4200)), (6, 47083, (5,)), (6, 47246, (0,)), (6, 47100, (2,))]),
    ("huawei", Command.safe_mode(), None, [(6, 47100, (0,)), (6, 47083, (0,)), (6, 47086, (2,))]),
    ("sungrow", Command.set_power(-2.5), None, [(6, 13079, (20,)), (16, 13049, (3, 0xAA, 2500))]),
    ("sungrow", Command.set_power(5.0), None, [(6, 13079, (20,)), (16, 13049, (3, 0xBB, 5000))]),
    ("sungrow", Command.stop(), None, [(6, 13050, (0xCC,))]),
    ("sungrow", Command.safe_mode(), None, [(16, 13049, (0, 0xCC, 0))]),
    ("saj", Command.set_power(-4.0), PlanContext(rated_power_kw=10.0),
     [(6, 0x3639, (400,)), (6, 0x3636, (2,)), (6, 0x3647, (3,))]),
    ("saj", Command.set_power(2.5), PlanContext(rated_power_kw=10.0),
     [(6, 0x363A, (250,)), (6, 0x3636, (1,)), (6, 0x3647, (3,))]),
    ("saj", Command.safe_mode(), None, [(6, 0x3636, (0,)), (6, 0x3647, (0,))]),
]  # fmt: skip


@pytest.mark.parametrize(("oem", "cmd", "ctx", "want"), CASES)
def test_plan_writes(
    oem: str, cmd: Command, ctx: PlanContext | None, want: list[tuple[int, int, tuple[int, ...]]]
) -> None:
    assert _writes(oem, cmd, ctx) == want


def test_per_mille_oem_needs_rated_power() -> None:
    with pytest.raises(WriteRefusedError, match="device fact"):
        plan_command(_map("saj"), Command.set_power(1.0))


def test_device_limits_refuse_before_io() -> None:
    ctx = PlanContext(max_charge_kw=5.0, max_discharge_kw=4.0)
    with pytest.raises(WriteRefusedError, match="charge"):
        plan_command(_map("huawei"), Command.set_power(-5.5), ctx)
    with pytest.raises(WriteRefusedError, match="discharge"):
        plan_command(_map("huawei"), Command.set_power(4.5), ctx)
    with pytest.raises(WriteRefusedError, match="NaN"):
        plan_command(_map("huawei"), Command.set_power(float("nan")))


def test_heartbeat_only_where_the_oem_has_one() -> None:
    hb = plan_heartbeat(_map("sungrow"))
    assert hb is not None
    assert [(w.fc, w.address, w.values) for w in hb.writes] == [(6, 13079, (20,))]
    assert plan_heartbeat(_map("huawei")) is None


def test_describe_lists_every_write() -> None:
    plan = plan_command(_map("sungrow"), Command.set_power(1.0))
    lines = plan.describe()
    assert len(lines) == 2
    assert "FC16 addr 13049" in lines[1]
    assert "ems_mode+ems_cmd+ems_power" in lines[1]
