"""The setpoint filter's batch step on consumed records (no broker; outputs in memory):
decode, table state, gate, stop bypass, dead letters, and the pending-write timer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from contract.codec import encode
from streams.app import StreamsApp, build, settings_with
from streams.steps.ids import command_id_for
from streams.testing.agents import (
    Sent,
    close_app,
    consumed,
    drain,
    memory_outputs,
    setpoint_record,
    telemetry_record,
)

S = 1_000_000
T0 = 1_700_000_000 * S


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def built(clock: Clock) -> Iterator[StreamsApp]:
    app = build(settings_with(bootstrap="localhost:9092", app_id="unit-filter"), clock=clock)
    yield app
    close_app(app)


def sp(site: str, sp_id: str, t: int, power: float) -> tuple[bytes, bytes]:
    return site.encode(), encode("SiteSetpoint", setpoint_record(site, sp_id, t, power, t + 60 * S))


def stop(site: str, sp_id: str, t: int) -> tuple[bytes, bytes]:
    record = setpoint_record(site, sp_id, t, 0.0, t + 5 * S)
    record.update(kind="STOP", power_kw=None)
    return site.encode(), encode("SiteSetpoint", record)


def filter_all(built: StreamsApp, messages: list[tuple[bytes, bytes]]) -> int:
    """The messages as consecutive ``site.setpoints`` records of one partition, one batch."""
    records = consumed(messages, topic="site.setpoints")
    return asyncio.run(built.setpoint_filter.process_records(records))


def commands(sent: list[Sent]) -> list[tuple[str, str, float | None]]:
    return [(s.record["site_id"], s.record["setpoint_id"], s.record["power_kw"]) for s in sent]


def test_setpoints_become_gated_commands_keyed_by_site(built: StreamsApp) -> None:
    out = memory_outputs(built)
    messages = [
        sp("a", "1", T0, 3.0),  # FIRST
        sp("a", "2", T0, 3.2),  # below threshold, recent write: suppressed (pending)
        sp("a", "2", T0, 3.2),  # the same setpoint again: duplicate
        sp("a", "3", T0, 4.0),  # a ramp step of 1 kW: written at once
        sp("b", "1", T0 - 30 * S, 2.0),  # stale (older than max_age_s)
        stop("a", "4", T0),  # stop bypasses the gate
    ]
    filter_all(built, messages)
    sent = drain(out["site.commands"])
    assert [s.key for s in sent] == [b"a", b"a", b"a"]
    assert commands(sent) == [("a", "1", 3.0), ("a", "3", 4.0), ("a", "4", None)]
    assert [s.record["kind"] for s in sent] == ["SET_POWER", "SET_POWER", "STOP"]
    assert sent[0].record["command_id"] == command_id_for("a", "1")
    assert drain(out["deadletter"]) == []
    # the table holds the state of every site that sent an accepted setpoint
    state = built.setpoint_filter.state_of("a")
    assert state.last_setpoint_id == "4"
    assert state.last_command_id == command_id_for("a", "4")
    assert built.setpoint_filter.state_of("b").last_setpoint_id is None


def test_commands_are_clamped_to_the_limits_the_site_reports(built: StreamsApp) -> None:
    out = memory_outputs(built)
    built.book.update_telemetry(telemetry_record("a", T0, max_kw=5.0))
    filter_all(built, [sp("a", "1", T0, 12.0), sp("b", "1", T0, 12.0)])
    assert commands(drain(out["site.commands"])) == [("a", "1", 5.0), ("b", "1", 12.0)]


def test_bad_input_goes_to_deadletter_and_the_batch_goes_on(built: StreamsApp) -> None:
    out = memory_outputs(built)
    wrong_type = encode("SiteTelemetry", telemetry_record("a", T0))
    no_power = setpoint_record("c", "1", T0, 1.0, T0 + 60 * S)
    no_power["power_kw"] = None
    messages = [
        (b"a", b"\x01\x02garbage"),
        (b"a", wrong_type),
        (b"c", encode("SiteSetpoint", no_power)),
        sp("d", "1", T0, 1.5),
    ]
    filter_all(built, messages)
    letters = drain(out["deadletter"])
    assert [(d.key, d.record["offset"], d.record["error_type"]) for d in letters] == [
        (b"a", 0, "BadMagicError"),
        (b"a", 1, "InvalidEventError"),
        (b"c", 2, "InvalidRecordError"),
    ]
    assert letters[0].record["original"] == b"\x01\x02garbage"
    assert letters[1].record["original"] == wrong_type
    assert "SiteTelemetry does not belong" in letters[1].record["reason"]
    assert all(d.record["consumer"] == "setpoint-filter" for d in letters)
    assert commands(drain(out["site.commands"])) == [("d", "1", 1.5)]


def test_the_timer_writes_a_suppressed_change_once_the_interval_passed(
    built: StreamsApp, clock: Clock
) -> None:
    out = memory_outputs(built)
    filter_all(built, [sp("a", "1", T0, 3.0), sp("a", "2", T0, 3.2)])
    assert commands(drain(out["site.commands"])) == [("a", "1", 3.0)]
    agent = built.setpoint_filter
    assert asyncio.run(agent.flush_pending()) == 0  # min_interval_s (10 s) not passed yet
    clock.now = T0 + 11 * S
    assert asyncio.run(agent.flush_pending()) == 1
    assert commands(drain(out["site.commands"])) == [("a", "2", 3.2)]
    assert agent.state_of("a").pending is None
    assert asyncio.run(agent.flush_pending()) == 0


def arm(site: str, sp_id: str, t: int, product: str, capacity: float) -> tuple[bytes, bytes]:
    bands = {"FCR_N": (50.0, 49.9), "FCR_D_UP": (49.9, 49.5), "FCR_D_DOWN": (50.1, 50.5)}
    f_start, f_full = bands[product]
    record = setpoint_record(site, sp_id, t, 0.0, t + 60 * S)
    record.update(
        kind="ARM_RESERVE",
        power_kw=None,
        reserve={
            "product": product,
            "capacity_kw": capacity,
            "f_start_hz": f_start,
            "f_full_hz": f_full,
            "deadband_hz": 0.0,
            "symmetric": product == "FCR_N",
        },
    )
    return site.encode(), encode("SiteSetpoint", record)


def order(site: str, sp_id: str, t: int, product: str, change: float) -> tuple[bytes, bytes]:
    record = setpoint_record(site, sp_id, t, change, t + 60 * S)
    record.update(kind="ORDER", product=product)
    return site.encode(), encode("SiteSetpoint", record)


def test_three_products_and_an_order_on_one_site_each_in_its_lane(
    built: StreamsApp, clock: Clock
) -> None:
    """One batch arms FCR-N, FCR-D up and FCR-D down on the same site and starts an mFRR
    order: four commands; a slightly changed FCR-N arm waits for the timer, an unchanged
    FCR-D up is dropped, the order's end passes at once."""
    out = memory_outputs(built)
    filter_all(
        built,
        [
            arm("a", "n1", T0, "FCR_N", 2.0),
            arm("a", "u1", T0, "FCR_D_UP", 3.0),
            arm("a", "d1", T0, "FCR_D_DOWN", 2.5),
            order("a", "m1", T0, "MFRR", 1.5),
            arm("a", "n2", T0 + S // 2, "FCR_N", 2.2),
            arm("a", "u2", T0 + S // 2, "FCR_D_UP", 3.0),
            order("a", "m2", T0 + S // 2, "MFRR", 0.0),
        ],
    )
    sent = drain(out["site.commands"])
    got = [(s.record["kind"], s.record["product"] or s.record["reserve"]["product"]) for s in sent]
    assert got == [
        ("ARM_RESERVE", "FCR_N"),
        ("ARM_RESERVE", "FCR_D_UP"),
        ("ARM_RESERVE", "FCR_D_DOWN"),
        ("ORDER", "MFRR"),
        ("ORDER", "MFRR"),
    ]
    assert [s.record["power_kw"] for s in sent[3:]] == [1.5, 0.0]
    state = built.setpoint_filter.state_of("a")
    assert [lane.product.value for lane in state.lanes] == [
        "FCR_N",
        "FCR_D_UP",
        "FCR_D_DOWN",
        "MFRR",
    ]
    clock.now = T0 + 11 * S
    assert asyncio.run(built.setpoint_filter.flush_pending()) == 1
    (deferred,) = drain(out["site.commands"])
    assert (deferred.record["setpoint_id"], deferred.record["reserve"]["capacity_kw"]) == (
        "n2",
        2.2,
    )
    assert asyncio.run(built.setpoint_filter.flush_pending()) == 0
