"""The streams worker's /metrics without a broker: what the setpoint filter decided, by reason
and outcome (a held-back setpoint counted again when its due write settles it), dead letters
by consumer and error type, the lead and the leader's sites online; every page parses with
prometheus_client's parser. On the real worker: tests/integration/test_streams_agents.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from contract.codec import encode
from contract.records import SiteTelemetry
from contract.testing.metrics import Scrape, parse
from streams.agents.leading import Leading
from streams.app import StreamsApp, build, settings_with
from streams.metrics import WorkerCollector
from streams.steps.filter_partition import FilterOutcome, FilterPartition
from streams.steps.filter_state import FilterConfig, SiteLimits
from streams.steps.fleet_aggregation import sample_of
from streams.steps.setpoint_filter import FilterReason
from streams.steps.slices import slice_of_samples
from streams.testing.agents import close_app, consumed, setpoint_record, telemetry_record

S = 1_000_000
T0 = 1_700_000_000 * S
FILTERED = "flowerhub_filter_setpoints_total"


@pytest.fixture
def built() -> Iterator[StreamsApp]:
    app = build(settings_with(bootstrap="localhost:9092", app_id="unit-metrics"))
    yield app
    close_app(app)


def page(built: StreamsApp) -> Scrape:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(built))
    return parse(generate_latest(registry).decode())


def sp(site: str, sp_id: str, t: int, power: float, valid_s: float = 60.0) -> tuple[bytes, bytes]:
    record = setpoint_record(site, sp_id, t, power, t + int(valid_s * S))
    return site.encode(), encode("SiteSetpoint", record)


def no_limits(site_id: str, at: int) -> SiteLimits | None:
    return None


def filtered(part: FilterPartition, messages: list[tuple[bytes, bytes]]) -> FilterOutcome:
    return part.process(consumed(messages, topic="site.setpoints"), no_limits, 0)


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
    assert first.value("flowerhub_worker_leading") == 0
    assert first.value("flowerhub_telemetry_late_records_total") == 0


def test_dropped_and_held_setpoints_move_their_reason(built: StreamsApp) -> None:
    part = FilterPartition(0, FilterConfig(), hold_us=0)
    out = filtered(
        part,
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
    )
    assert len(out.commands) == 2
    # what the site tasks count once the cycle's outputs were acknowledged
    tasks = built.site_tasks
    tasks.reasons.update(out.reasons)
    for letter in out.dead_letters:
        tasks.dead_letters[(letter["consumer"], letter["error_type"])] += 1
    now = page(built)
    expected = {"FIRST": 2, "DUPLICATE": 1, "SUPPRESSED": 1, "STALE": 1, "OUT_OF_ORDER": 1}
    expected["EXPIRED"] = 1
    for reason, n in expected.items():
        assert now.value(FILTERED, reason=reason) == n, reason
    assert now.value(FILTERED, outcome="dropped") == 4
    assert now.value(FILTERED, outcome="held") == 1
    assert now.value(FILTERED, outcome="written") == 2
    dlq = "flowerhub_dead_letters_total"
    assert now.value(dlq, consumer="setpoint-filter", error_type="BadMagicError") == 1
    # the held-back change is written at its due instant (the interval passed): DEFERRED
    later = part.tick(T0 + 11 * S)
    assert len(later.commands) == 1
    tasks.reasons.update(later.reasons)
    after = page(built)
    assert after.value(FILTERED, reason="DEFERRED") == 1
    assert after.value(FILTERED, outcome="written") == 3
    assert after.value(FILTERED, reason="SUPPRESSED") == 1  # counted once, when held


def test_a_pending_setpoint_that_expires_first_is_counted_expired() -> None:
    part = FilterPartition(0, FilterConfig(), hold_us=0)
    filtered(part, [sp("a", "1", T0, 3.0), sp("a", "2", T0, 3.2, valid_s=5.0)])
    # the pending setpoint's validity ends before its gate opens (min interval 10 s)
    out = part.tick(T0 + 6 * S)
    assert out.commands == []
    assert out.reasons[FilterReason.EXPIRED] == 1


def test_the_leader_counts_its_sites_online_at_its_event_time(built: StreamsApp) -> None:
    leading = Leading(built.app, built.settings)  # a lead in progress (no Kafka here)
    built.leader.leading = leading
    rows = [
        (site, sample_of(SiteTelemetry.from_record(telemetry_record(site, t))))
        for site, t in (("fresh", T0 - 2 * S), ("old", T0 - 11 * S))
    ]
    leading.core.book.note_slice(slice_of_samples(0, 1, T0 - 11 * S, rows))
    leading.core.clock = T0  # telemetry_max_age_s is 10
    now = page(built)
    assert now.value("flowerhub_worker_leading") == 1
    assert now.value("flowerhub_fleet_sites", state="online") == 1
    assert now.value("flowerhub_fleet_sites", state="offline") == 1
    leading.core.clock = T0 + 9 * S
    assert page(built).value("flowerhub_fleet_sites", state="online") == 0
    leading.active = False  # the lead over: no longer counted here
    assert page(built).value("flowerhub_fleet_sites", state="offline") == 0
