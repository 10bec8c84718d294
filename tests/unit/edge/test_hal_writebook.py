"""A device's write bookkeeping (pure): a power update leaves out what the device holds and takes
the heartbeat along when it is getting old; the standalone heartbeat is due only after a whole
period (and counts as sent when handed out); any plan written re-arms it; a failure forgets
what was held."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest

from edge.hal.control import ControlPolicy, WriteBook
from edge.hal.maps import load_all
from edge.hal.planner import PlanContext, plan_command, plan_heartbeat
from edge.hal.points import Command, WritePlan
from edge.hal.registermap import RegisterMap

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PERIOD = 4.0


@functools.cache
def maps() -> dict[str, RegisterMap]:
    return load_all()


def plan(oem: str, kw: float) -> WritePlan:
    return plan_command(maps()[oem], Command.set_power(kw), PlanContext(rated_power_kw=10.0))


def heartbeat(oem: str) -> WritePlan | None:
    return plan_heartbeat(maps()[oem], PlanContext())


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def points(p: WritePlan) -> list[tuple[str, ...]]:
    return [w.points for w in p.writes]


# (oem, seconds after the first write, carry?, the points the second update writes)
UPDATES = [
    # Sungrow: the heartbeat was written by the whole sequence at 0 s; fresh: power block alone
    ("sungrow", 1.0, True, [("ems_mode", "ems_cmd", "ems_power")]),
    # half a period old: it rides along after the update's own write
    ("sungrow", PERIOD / 2, True, [("ems_mode", "ems_cmd", "ems_power"), ("ems_heartbeat",)]),
    # not asked to carry it (a droop write): never
    ("sungrow", PERIOD / 2, False, [("ems_mode", "ems_cmd", "ems_power")]),
    # Huawei has no heartbeat: only the changed power register, carry or not
    ("huawei", PERIOD, True, [("forcible_discharge_power",)]),
]


@pytest.mark.parametrize(("oem", "after_s", "carry", "want"), UPDATES)
def test_update_trims_and_carries(
    oem: str, after_s: float, carry: bool, want: list[tuple[str, ...]]
) -> None:
    book = WriteBook(ControlPolicy(hold_s=30.0, heartbeat_s=PERIOD))
    hb = heartbeat(oem)
    first = book.update(plan(oem, 3.0), hb, at(0.0), carry=carry)
    assert first == plan(oem, 3.0)  # nothing held yet: the whole sequence
    book.wrote(first, hb, at(0.0))
    assert points(book.update(plan(oem, 2.0), hb, at(after_s), carry=carry)) == want


def test_keepalive_is_due_after_a_whole_period_of_no_heartbeat() -> None:
    book = WriteBook(ControlPolicy(heartbeat_s=PERIOD))
    hb = heartbeat("sungrow")
    assert book.keepalive(hb, at(0.0)) is hb  # never written: due
    assert book.keepalive(hb, at(1.0)) is None  # handed out at 0 s counts as sent
    assert book.keepalive(hb, at(PERIOD)) is hb
    book.wrote(plan("sungrow", 1.0), hb, at(PERIOD + 1.0))  # a whole sequence re-arms it
    assert book.keepalive(hb, at(2 * PERIOD)) is None
    assert book.keepalive(hb, at(2 * PERIOD + 1.0)) is hb
    assert book.keepalive(None, at(100.0)) is None  # a map without a heartbeat


def test_a_failure_forgets_what_was_held() -> None:
    book = WriteBook(ControlPolicy(hold_s=30.0, heartbeat_s=PERIOD))
    whole = plan("saj", 3.0)
    book.wrote(whole, None, at(0.0))
    assert len(book.update(plan("saj", 2.0), None, at(1.0), carry=False).writes) == 1
    book.failed()
    assert book.update(plan("saj", 2.0), None, at(1.0), carry=False) == plan("saj", 2.0)


def test_holding_disabled_writes_every_sequence_whole() -> None:
    book = WriteBook(ControlPolicy(hold_s=0.0, heartbeat_s=PERIOD))
    book.wrote(plan("saj", 3.0), None, at(0.0))
    assert book.update(plan("saj", 2.0), None, at(1.0), carry=False) == plan("saj", 2.0)
