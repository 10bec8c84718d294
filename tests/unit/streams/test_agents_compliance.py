"""The live compliance agent through Faust's test context: activations and assignments set
the obligations (kept in the compliance table), each FleetState window gets verdicts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from contract.codec import encode
from streams.app import StreamsApp, build, settings_with
from streams.steps.ids import derived_id
from streams.testing.agents import (
    ManualClock,
    activation_record,
    close_app,
    drain,
    feed,
    memory_outputs,
    telemetry_record,
)

S = 1_000_000
T0 = 1_700_000_000 * S
FLEET = b"flowerhub"


@pytest.fixture
def built() -> Iterator[StreamsApp]:
    app = build(
        settings_with(bootstrap="localhost:9092", app_id="unit-comp"), clock=ManualClock(T0)
    )
    yield app
    close_app(app)


def fleet_state(start: int, power_mw: float, frequency_hz: float = 50.0) -> tuple[bytes, bytes]:
    record: dict[str, Any] = {
        "event_id": derived_id("unit-fleet-state", start),
        "event_time": start + S,
        "fleet_id": "flowerhub",
        "window_start": start,
        "window_end": start + S,
        "window_s": 1,
        "total_power_mw": power_mw,
        "headroom_up_mw": 1.0,
        "headroom_down_mw": 1.0,
        "sites_online": 100,
        "sites_faulted": 0,
        "mean_frequency_hz": frequency_hz,
        "per_oem": [],
    }
    return FLEET, encode("FleetState", record)


def afrr(requested_mw: float) -> tuple[bytes, bytes]:
    act = activation_record(
        "flowerhub",
        "afrr-1",
        T0,
        product="AFRR",
        requested_mw=requested_mw,
        end_time=T0 + 3600 * S,
        baseline_mw=0.0,
    )
    return FLEET, encode("MarketActivation", act)


def test_steady_state_verdicts_for_an_afrr_order(built: StreamsApp) -> None:
    out = memory_outputs(built)
    steady = T0 + 1000 * S
    messages = [
        afrr(0.5),
        fleet_state(steady, 0.5),
        fleet_state(steady + S, -0.3),
        fleet_state(steady + 2 * S, 0.2),
    ]
    asyncio.run(feed(built, "compliance", messages))
    verdicts = [s.record for s in drain(out["compliance.verdicts"])]
    assert [(v["status"], v["finding"]) for v in verdicts] == [
        ("PASS", "OK"),
        ("FAIL", "WRONG_POLARITY"),
        ("FAIL", "UNDER_DELIVERY"),
    ]
    assert {v["activation_id"] for v in verdicts} == {"afrr-1"}
    assert [v["measured_mw"] for v in verdicts] == pytest.approx([0.5, -0.3, 0.2])
    assert all(v["required_mw"] == pytest.approx(0.5) for v in verdicts)
    # the obligation lives in the table, keyed by fleet
    state = built.compliance.state_of("flowerhub")
    assert [o.obligation_id for o in state.obligations] == ["afrr-1"]


def test_stale_sites_are_flagged_while_a_frequency_reserve_is_armed(built: StreamsApp) -> None:
    out = memory_outputs(built)
    window = T0 + 100 * S
    built.book.update_telemetry(telemetry_record("fresh", window))
    built.book.update_telemetry(telemetry_record("old", window - 60 * S))
    assignment = {
        "event_id": derived_id("unit-assignment"),
        "event_time": T0,
        "fleet_id": "flowerhub",
        "assignment_id": "fcrn-1",
        "product": "FCR_N",
        "capacity_mw": 0.4,
        "valid_from": T0,
        "valid_until": T0 + 3600 * S,
        "f_start_hz": 50.0,
        "f_full_hz": 49.9,
    }
    messages = [(FLEET, encode("ReserveAssignment", assignment)), fleet_state(window, 0.0)]
    asyncio.run(feed(built, "compliance", messages))
    verdicts = [s.record for s in drain(out["compliance.verdicts"])]
    stale = [v for v in verdicts if v["finding"] == "STALE_SITES"]
    assert len(stale) == 1
    assert stale[0]["site_ids"] == ["old"]
    assert stale[0]["status"] == "WARN"


def test_a_garbled_fleet_state_is_dead_lettered(built: StreamsApp) -> None:
    out = memory_outputs(built)
    key, value = fleet_state(T0, 0.1)
    asyncio.run(feed(built, "compliance", [(key, value[:-3]), afrr(0.1)]))
    (letter,) = drain(out["deadletter"])
    assert letter.record["consumer"] == "compliance"
    assert letter.record["original"] == value[:-3]
    assert [o.obligation_id for o in built.compliance.state_of("flowerhub").obligations] == [
        "afrr-1"
    ]
