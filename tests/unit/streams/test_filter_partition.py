"""The setpoint filter of one ``site.setpoints`` partition in event time
(``steps.filter_partition``): the clock, due writes, restore from the changelog, dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from contract.codec import encode
from streams.steps.filter_partition import CLOCK_KEY, FilterPartition
from streams.steps.filter_state import FilterConfig, SiteLimits
from streams.steps.plain import branch_encoder
from streams.steps.setpoint_filter import FilterReason
from streams.testing.agents import consumed, fleet_setpoint_record, setpoint_record

S = 1_000_000
T0 = 1_700_000_000 * S
STAMP = 42
CONFIG = FilterConfig()  # threshold 0.5 kW, min interval 10 s, max age 5 s


def no_limits(site_id: str, at: int) -> SiteLimits | None:
    return None


def sp(site: str, n: int, t: int, kw: float) -> tuple[bytes, bytes]:
    return site.encode(), encode(
        "SiteSetpoint", setpoint_record(site, f"sp-{n}", t, kw, t + 300 * S)
    )


def feed(
    part: FilterPartition, messages: Sequence[tuple[bytes | None, bytes | None]], first: int = 0
) -> Any:
    return part.process(
        consumed(messages, topic="site.setpoints", first_offset=first), no_limits, STAMP
    )


def test_now_is_the_partitions_clock_not_the_wall() -> None:
    part = FilterPartition(0, CONFIG, hold_us=S)
    out = feed(part, [sp("a", 1, T0, 2.0)])
    (command,) = out.commands
    assert command["event_time"] == T0  # written at the setpoint's own time
    assert part.clock == T0
    assert out.changes[CLOCK_KEY] == {"clock": T0}
    # a setpoint more than max_age_s older than the clock is stale; newer ones are not
    out = feed(part, [sp("b", 2, T0 + 20 * S, 1.0), sp("c", 3, T0 + 10 * S, 1.0)], first=1)
    assert [c["site_id"] for c in out.commands] == ["b"]
    assert out.reasons[FilterReason.STALE] == 1
    assert out.dropped[0][:3] == ("c", "sp-3", FilterReason.STALE)


def test_a_held_back_change_is_written_at_its_due_instant() -> None:
    part = FilterPartition(0, CONFIG, hold_us=S)
    feed(part, [sp("a", 1, T0, 2.0)])
    out = feed(part, [sp("a", 2, T0 + 2 * S, 2.2)], first=1)  # 0.2 kW: held back
    assert out.commands == []
    assert out.reasons[FilterReason.SUPPRESSED] == 1
    assert part.next_due() == T0 + 10 * S  # min_interval_s after the write
    assert part.tick(T0 + 10 * S).commands == []  # the clock estimate less the 1 s hold
    out = part.tick(T0 + 11 * S)
    (command,) = out.commands
    assert command["power_kw"] == 2.2
    assert command["event_time"] == T0 + 10 * S
    assert part.clock == T0 + 10 * S


def test_a_later_setpoint_makes_the_due_writes_before_it() -> None:
    """Read as a backlog (no tick in between), the held-back change is written at its due
    instant all the same, before the next setpoint: the same commands as live."""
    live = FilterPartition(0, CONFIG, hold_us=S)
    feed(live, [sp("a", 1, T0, 2.0), sp("a", 2, T0 + 2 * S, 2.2)])
    ticked = live.tick(T0 + 12 * S).commands
    later = feed(live, [sp("a", 3, T0 + 15 * S, 5.0)], first=2).commands

    backlog = FilterPartition(0, CONFIG, hold_us=S)
    all_at_once = feed(
        backlog, [sp("a", 1, T0, 2.0), sp("a", 2, T0 + 2 * S, 2.2), sp("a", 3, T0 + 15 * S, 5.0)]
    ).commands
    assert all_at_once == [
        *feed(FilterPartition(0, CONFIG, hold_us=S), [sp("a", 1, T0, 2.0)]).commands,
        *ticked,
        *later,
    ]
    assert backlog.store == live.store
    assert backlog.late == live.late == 0


def test_a_setpoint_overtaken_by_a_due_write_is_counted_late() -> None:
    part = FilterPartition(0, CONFIG, hold_us=S)
    feed(part, [sp("a", 1, T0, 2.0), sp("a", 2, T0 + 2 * S, 2.2)])
    part.tick(T0 + 12 * S)  # the due write at T0 + 10 s is made
    feed(part, [sp("b", 3, T0 + 9 * S, 1.0)], first=2)  # it belonged before that write
    assert part.late == 1


def test_a_restored_partition_continues_where_the_changelog_left_it() -> None:
    first = FilterPartition(0, CONFIG, hold_us=S)
    feed(first, [sp("a", 1, T0, 2.0), sp("a", 2, T0 + 2 * S, 2.2)])
    restored = FilterPartition(0, CONFIG, hold_us=S)
    assert restored.restore(first.store) == 1
    assert restored.clock == first.clock
    assert restored.next_due() == first.next_due()
    # the same setpoint read again after a crash is a duplicate, not a second command
    out = feed(restored, [sp("a", 2, T0 + 2 * S, 2.2)])
    assert out.commands == []
    assert out.reasons[FilterReason.DUPLICATE] == 1
    assert restored.tick(T0 + 11 * S).commands == first.tick(T0 + 11 * S).commands


def test_what_is_not_a_setpoint_is_dead_lettered_and_the_rest_goes_on() -> None:
    part = FilterPartition(0, CONFIG, hold_us=S)
    messages: list[tuple[bytes | None, bytes | None]] = [
        (b"x", b"garbage"),
        (b"y", None),
        (b"t", encode("FleetSetpoint", fleet_setpoint_record("f", "fsp", T0, 1.0, T0 + S))),
        sp("a", 1, T0, 2.0),
    ]
    out = feed(part, messages)
    assert [d["offset"] for d in out.dead_letters] == [0, 1, 2]
    assert {d["consumer"] for d in out.dead_letters} == {"setpoint-filter"}
    assert all(d["event_time"] == STAMP for d in out.dead_letters)  # no broker timestamp
    assert [c["site_id"] for c in out.commands] == ["a"]


def test_a_bad_changelog_entry_is_refused() -> None:
    part = FilterPartition(0, CONFIG, hold_us=S)
    with pytest.raises(Exception, match="FilterState"):
        part.restore({"a": ["not", "a", "state"]})
    with pytest.raises(Exception, match="clock"):
        part.restore({CLOCK_KEY: {"clock": "soon"}})


def test_limits_are_taken_as_of_the_setpoints_event_time() -> None:
    part = FilterPartition(0, CONFIG, hold_us=S)
    asked: list[tuple[str, int]] = []

    def limits_at(site_id: str, at: int) -> SiteLimits:
        asked.append((site_id, at))
        return SiteLimits(1.5, 1.5)

    out = part.process(consumed([sp("a", 1, T0, 2.0)], topic="site.setpoints"), limits_at, STAMP)
    assert asked == [("a", T0)]
    assert out.commands[0]["power_kw"] == 1.5


def _arm(site: str, n: int, product: str, kw: float) -> tuple[bytes, bytes]:
    record = {
        **setpoint_record(site, f"sp-{n}", T0, 0.0, T0 + 300 * S),
        "kind": "ARM_RESERVE",
        "power_kw": None,
        "reserve": {
            "product": product,
            "capacity_kw": kw,
            "f_start_hz": 49.9,
            "f_full_hz": 49.5,
            "deadband_hz": 0.0,
            "symmetric": False,
        },
    }
    return site.encode(), encode("SiteSetpoint", record)


def test_a_homes_lanes_changed_in_one_batch_are_one_change_of_its_final_state() -> None:
    part = FilterPartition(0, CONFIG, hold_us=S)
    products = ("FCR_N", "FCR_D_UP", "FCR_D_DOWN")
    messages = [_arm(site, i, p, 1.0) for i, p in enumerate(products) for site in ("a", "b")]
    out = feed(part, messages)
    assert len(out.commands) == 6
    assert sorted(out.changes) == [CLOCK_KEY, "a", "b"]
    for site in ("a", "b"):
        assert out.changes[site] is part.store[site]
        assert sorted(lane["product"] for lane in out.changes[site]["lanes"]) == sorted(products)
        assert part.state_of(site).to_dict() == out.changes[site]
    # what the changelog holds restores the same filter
    restored = FilterPartition(0, CONFIG, hold_us=S)
    assert restored.restore(dict(out.changes)) == 2
    again = [_arm("a", 9, "FCR_N", 1.0)]
    assert feed(restored, again, first=6).reasons == feed(part, again, first=6).reasons


def test_commands_encode_to_the_codecs_bytes_with_the_site_tasks_encoder() -> None:
    """The site tasks encode the filter's command records with ``branch_encoder`` (raw
    codec, reserve union named): the same bytes as ``contract.codec.encode``, for a
    SET_POWER and for an ARM_RESERVE command (the reserve union's record branch)."""
    arm = {
        **setpoint_record("b", "sp-2", T0, 0.0, T0 + 300 * S),
        "kind": "ARM_RESERVE",
        "power_kw": None,
        "reserve": {
            "product": "FCR_D_UP",
            "capacity_kw": 1.5,
            "f_start_hz": 49.9,
            "f_full_hz": 49.5,
            "deadband_hz": 0.0,
            "symmetric": False,
        },
    }
    part = FilterPartition(0, CONFIG, hold_us=S)
    out = feed(part, [sp("a", 1, T0, 2.0), (b"b", encode("SiteSetpoint", arm))])
    assert [c["kind"] for c in out.commands] == ["SET_POWER", "ARM_RESERVE"]
    encoder = branch_encoder("SiteCommand")
    for command in out.commands:
        assert encoder(command) == encode("SiteCommand", command)
