"""The streams worker's /metrics without a broker: what the setpoint filter decided, by reason
and outcome (a held-back setpoint counted again when the timer settles it), dead letters by
consumer and error type, sites online in the book; every page parses with prometheus_client's
parser. On the real worker: tests/integration/test_streams_agents.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from contract.codec import encode
from contract.testing.metrics import Scrape, parse
from streams.app import StreamsApp, build, settings_with
from streams.metrics import WorkerCollector
from streams.steps.setpoint_filter import FilterReason
from streams.testing.agents import (
    ManualClock,
    close_app,
    consumed,
    drain,
    memory_outputs,
    setpoint_record,
    telemetry_record,
)

S = 1_000_000
T0 = 1_700_000_000 * S
FILTERED = "flowerhub_filter_setpoints_total"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def built(clock: ManualClock) -> Iterator[StreamsApp]:
    app = build(settings_with(bootstrap="localhost:9092", app_id="unit-metrics"), clock=clock)
    yield app
    close_app(app)


def page(built: StreamsApp) -> Scrape:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(built))
    return parse(generate_latest(registry).decode())


def sp(site: str, sp_id: str, t: int, power: float, valid_s: float = 60.0) -> tuple[bytes, bytes]:
    record = setpoint_record(site, sp_id, t, power, t + int(valid_s * S))
    return site.encode(), encode("SiteSetpoint", record)


def test_every_reason_is_there_from_the_start_with_its_outcome(built: StreamsApp) -> None:
    first = page(built)
    assert first.types["flowerhub_filter_setpoints"] == "counter"
    rows = {(s.labels["reason"], s.labels["outcome"]) for s in first.samples(FILTERED)}
    assert rows == {(r.value, r.outcome) for r in FilterReason}
    assert first.value(FILTERED) == 0
    outcomes = {r.value: r.outcome for r in FilterReason}
    assert {r for r, o in outcomes.items() if o == "dropped"} == {
        "DUPLICATE",
        "STALE",
        "OUT_OF_ORDER",
        "EXPIRED",
    }
    assert outcomes["SUPPRESSED"] == "held"
    assert outcomes["DEFERRED"] == "written"
    for family in ("flowerhub_dead_letters", "flowerhub_consumer_lag_records"):
        assert first.has(family), family
    assert first.value("flowerhub_fleet_sites", state="online") == 0


def test_dropped_and_held_setpoints_move_their_reason(
    built: StreamsApp, clock: ManualClock
) -> None:
    out = memory_outputs(built)
    records = consumed(
        [
            sp("a", "1", T0, 3.0),  # FIRST
            sp("a", "1", T0, 3.0),  # DUPLICATE
            sp("a", "2", T0, 3.2),  # SUPPRESSED: held back (pending)
            sp("b", "1", T0 - 30 * S, 1.0),  # STALE (max age 5 s)
            sp("c", "2", T0, 1.0),  # FIRST
            sp("c", "1", T0 - S, 2.0),  # OUT_OF_ORDER
            sp("d", "1", T0, 1.0, valid_s=-1.0),  # EXPIRED
            (b"e", b"\x01garbage"),  # dead letter
        ],
        topic="site.setpoints",
    )
    asyncio.run(built.setpoint_filter.process_records(records))
    assert len(drain(out["site.commands"])) == 2
    now = page(built)
    expected = {"FIRST": 2, "DUPLICATE": 1, "SUPPRESSED": 1, "STALE": 1, "OUT_OF_ORDER": 1}
    expected["EXPIRED"] = 1
    for reason, n in expected.items():
        assert now.value(FILTERED, reason=reason) == n, reason
    assert now.value(FILTERED, outcome="dropped") == 4
    assert now.value(FILTERED, outcome="held") == 1
    assert now.value(FILTERED, outcome="written") == 2
    assert (
        now.value(
            "flowerhub_dead_letters_total", consumer="setpoint-filter", error_type="BadMagicError"
        )
        == 1
    )
    # the held-back change is written once the interval passed: DEFERRED
    clock.now = T0 + 11 * S
    assert asyncio.run(built.setpoint_filter.flush_pending()) == 1
    later = page(built)
    assert later.value(FILTERED, reason="DEFERRED") == 1
    assert later.value(FILTERED, outcome="written") == 3
    assert later.value(FILTERED, reason="SUPPRESSED") == 1  # counted once, when held


def test_a_pending_setpoint_that_expires_first_is_counted_expired(
    built: StreamsApp, clock: ManualClock
) -> None:
    memory_outputs(built)
    records = consumed([sp("a", "1", T0, 3.0), sp("a", "2", T0, 3.2, valid_s=5.0)])
    asyncio.run(built.setpoint_filter.process_records(records))
    clock.now = T0 + 6 * S  # the pending setpoint's validity ended before its gate opened
    assert asyncio.run(built.setpoint_filter.flush_pending()) == 0
    assert page(built).value(FILTERED, reason="EXPIRED") == 1


def test_sites_online_follow_the_allocators_age_limit(
    built: StreamsApp, clock: ManualClock
) -> None:
    book = built.book
    book.update_telemetry(telemetry_record("fresh", T0 - 2 * S))
    book.update_telemetry(telemetry_record("old", T0 - 11 * S))  # telemetry_max_age_s is 10
    now = page(built)
    assert now.value("flowerhub_fleet_sites", state="online") == 1
    assert now.value("flowerhub_fleet_sites", state="offline") == 1
    clock.now = T0 + 9 * S
    assert page(built).value("flowerhub_fleet_sites", state="online") == 0
