"""The leader's pure core (``steps.leader_core``) fed through the pipeline harness
(``streams.testing.pipeline``): FleetStates from the partitions' slices, requests split at
their event time, the event-time re-split, live compliance, the snapshot a new leader
restores."""

from __future__ import annotations

import math
from typing import Any

import pytest

from contract.codec import encode
from contract.errors import InvalidEventError, InvalidRecordError
from contract.records import FleetState
from streams.app import settings_with
from streams.steps.leader_core import ForeignFleetError, LeaderCore
from streams.steps.sitebook import SiteBook
from streams.steps.slices import slice_of_samples
from streams.steps.telemetry_step import TelemetryAggregator
from streams.testing.agents import activation_record, consumed, telemetry_record
from streams.testing.pipeline import Pipeline, leader_config

S = 1_000_000
T0 = 1_700_000_000 * S
SETTINGS = settings_with(bootstrap="localhost:9092", app_id="unit-leader")
SITES = [f"site-{i:02d}" for i in range(8)]
PARTITION = {site: i % 2 for i, site in enumerate(SITES)}


def value(site: str, k: int, **fields: Any) -> bytes:
    record = telemetry_record(site, T0 + k * S + S // 4, battery_power_kw=0.1 * k, **fields)
    return encode("SiteTelemetry", record)


def feed_seconds(pipe: Pipeline, first: int, last: int, *, faulted_from: int | None = None) -> None:
    """Every site's telemetry for seconds ``first..last``; site-00 faulted from
    ``faulted_from`` on."""
    for k in range(first, last + 1):
        for p in (0, 1):
            pipe.telemetry(
                p,
                [
                    value(
                        s,
                        k,
                        faulted=s == "site-00" and faulted_from is not None and k >= faulted_from,
                    )
                    for s in SITES
                    if PARTITION[s] == p
                ],
            )
        pipe.wall_us = T0 + k * S + S // 2
        pipe.lead()


def order(act_id: str, t: int, mw: float) -> dict[str, Any]:
    return activation_record(
        "flowerhub", act_id, t, product="MFRR", requested_mw=mw, end_time=t + 120 * S
    )


def test_fleet_states_from_two_partitions_equal_one_step_over_all() -> None:
    pipe = Pipeline(SETTINGS, 2)
    feed_seconds(pipe, 0, 14)
    out = pipe.finish(T0 + 40 * S)
    whole = TelemetryAggregator(SETTINGS, SiteBook())
    values = [value(s, k) for k in range(15) for s in SITES]
    reference = whole.add_batch(consumed([(None, v) for v in values]), 0).states + [
        s for w in whole.windows for s in w.flush()
    ]

    def key(s: FleetState) -> tuple[int, int]:
        return s.window_s, s.window_start

    assert sorted(out.states, key=key) == sorted(reference, key=key)
    assert out.late_telemetry == out.late_slices == out.late_inputs == 0


def test_an_order_is_split_over_the_sites_fresh_at_its_event_time() -> None:
    pipe = Pipeline(SETTINGS, 2)
    feed_seconds(pipe, 0, 5)
    t = T0 + 5 * S + S // 2
    pipe.fleet(t, "MarketActivation", order("act-1", t, 0.008))
    pipe.wall_us = t + S
    feed_seconds(pipe, 6, 8)
    setpoints = pipe.outcome.setpoints
    assert sorted(sp.site_id for sp in setpoints) == SITES
    assert {sp.event_time for sp in setpoints} == {t}  # decided at the order's event time
    assert math.fsum(sp.power_kw or 0.0 for sp in setpoints) == pytest.approx(8.0)
    assert {sp.source_id for sp in setpoints} == {"act-1"}


def test_a_site_that_faults_is_re_split_at_the_next_whole_second() -> None:
    pipe = Pipeline(SETTINGS, 2)
    feed_seconds(pipe, 0, 5)
    t = T0 + 5 * S + S // 2
    pipe.fleet(t, "MarketActivation", order("act-1", t, 0.008))
    feed_seconds(pipe, 6, 7)
    before = len(pipe.outcome.setpoints)
    feed_seconds(pipe, 8, 11, faulted_from=8)
    again = pipe.outcome.setpoints[before:]
    assert "site-00" in {sp.site_id for sp in again}
    assert [sp.power_kw for sp in again if sp.site_id == "site-00"] == [0.0]
    assert all(sp.event_time % S == 0 for sp in again)  # on the event-time re-split tick


def test_live_compliance_judges_the_fleet_states_the_leader_emits() -> None:
    pipe = Pipeline(SETTINGS, 2)
    t = T0 + 2 * S
    pipe.fleet(t, "MarketActivation", order("act-1", t, 0.008))
    feed_seconds(pipe, 0, 8)
    pipe.finish(T0 + 20 * S)
    assert pipe.core.compliance.obligations
    assert pipe.core.emitted[1] >= T0 + 8 * S


def test_a_restored_leader_continues_as_the_first_would_have() -> None:
    """An order split at 9.5 s, the snapshot after second 12; a new core restores it and
    re-reads the slices from ``resume_from`` (the order itself is before the snapshot's
    offsets: not read again): its outputs from then on equal the uninterrupted leader's."""
    whole = Pipeline(SETTINGS, 2)
    feed_seconds(whole, 0, 9)
    t = T0 + 9 * S + S // 2
    whole.fleet(t, "MarketActivation", order("act-1", t, 0.006))
    feed_seconds(whole, 10, 12)
    assert len(whole.outcome.setpoints) == len(SITES)  # split once
    snapshot = whole.core.snapshot()
    done_states = len(whole.outcome.states)
    done_setpoints = len(whole.outcome.setpoints)
    feed_seconds(whole, 13, 20, faulted_from=15)
    expected_states = whole.outcome.states[done_states:]
    expected_setpoints = whole.outcome.setpoints[done_setpoints:]
    assert expected_setpoints  # the re-split after the fault

    restored = Pipeline(SETTINGS, 2)
    restored.core.restore(snapshot)
    since = restored.core.resume_from(round(SETTINGS.workers.lookback_s * S))
    assert since is not None
    assert since <= min(whole.core.emitted.values())
    feed_seconds(restored, 0, 20, faulted_from=15)  # re-read from Kafka, then the new ones
    assert restored.outcome.states == expected_states
    assert restored.outcome.setpoints == expected_setpoints  # no share sent again
    assert restored.core.late_slices == 0


def test_a_slice_for_a_window_already_closed_is_late() -> None:
    pipe = Pipeline(SETTINGS, 2)
    feed_seconds(pipe, 0, 5)
    core = pipe.core
    closed = next(iter(pipe.outcome.states))
    core.handle_slice(slice_of_samples(0, closed.window_s, closed.window_start, []))
    assert core.late_slices == 1


def test_fleet_requests_of_another_fleet_or_kind_are_refused() -> None:
    core = LeaderCore(leader_config(SETTINGS))
    other = activation_record(
        "elsewhere", "a", T0, product="MFRR", requested_mw=1.0, end_time=T0 + S
    )
    with pytest.raises(ForeignFleetError):
        core.handle_fleet("MarketActivation", other, T0)
    with pytest.raises(InvalidEventError):
        core.handle_fleet("SiteTelemetry", {}, T0)
    with pytest.raises(InvalidRecordError):
        core.restore({"v": 99})
