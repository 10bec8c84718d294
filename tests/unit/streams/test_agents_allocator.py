"""The allocator agent through Faust's test context: fleet requests -> site setpoints over
the site book, re-allocation when sites fault, command results, dead letters."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest

from contract.codec import encode
from contract.enums import Product
from streams.app import StreamsApp, build, settings_with
from streams.steps.ids import derived_id
from streams.testing.agents import (
    ManualClock,
    activation_record,
    close_app,
    drain,
    feed,
    fleet_setpoint_record,
    memory_outputs,
    telemetry_record,
)

S = 1_000_000
T0 = 1_700_000_000 * S
FLEET = "flowerhub"
SITES = [f"site-{i:02d}" for i in range(20)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def built(clock: ManualClock) -> Iterator[StreamsApp]:
    app = build(settings_with(bootstrap="localhost:9092", app_id="unit-alloc"), clock=clock)
    for i, site in enumerate(SITES):
        app.book.update_telemetry(telemetry_record(site, T0 - S, headroom_up_kw=2.0 + i % 4))
    yield app
    close_app(app)


def fleet_setpoint(sp_id: str, target_mw: float) -> tuple[bytes, bytes]:
    record = fleet_setpoint_record(FLEET, sp_id, T0, target_mw, T0 + 300 * S)
    return FLEET.encode(), encode("FleetSetpoint", record)


def test_a_fleet_setpoint_is_split_over_the_known_sites(built: StreamsApp) -> None:
    out = memory_outputs(built)
    asyncio.run(feed(built, "allocator", [fleet_setpoint("fsp-1", 0.05)]))
    sent = drain(out["site.setpoints"])
    assert sorted(s.key or b"" for s in sent) == [s.encode() for s in SITES]
    assert {s.record["source_id"] for s in sent} == {"fsp-1"}
    assert math.fsum(s.record["power_kw"] for s in sent) == pytest.approx(50.0, abs=1e-6)
    assert all(0 < s.record["power_kw"] <= 2.0 + 3 for s in sent)
    current = built.allocator.last
    assert current is not None
    assert current.shortfall_kw == pytest.approx(0.0, abs=1e-9)


def test_more_than_the_fleet_can_do_is_reported_as_shortfall(built: StreamsApp) -> None:
    out = memory_outputs(built)
    capacity_kw = sum(2.0 + i % 4 for i in range(len(SITES)))
    asyncio.run(feed(built, "allocator", [fleet_setpoint("fsp-2", 1.0)]))
    sent = drain(out["site.setpoints"])
    assert math.fsum(s.record["power_kw"] for s in sent) == pytest.approx(capacity_kw)
    current = built.allocator.last
    assert current is not None
    assert current.shortfall_kw == pytest.approx(1000.0 - capacity_kw)


def test_an_faulted_site_is_reallocated_to_the_others(
    built: StreamsApp, clock: ManualClock
) -> None:
    out = memory_outputs(built)
    asyncio.run(feed(built, "allocator", [fleet_setpoint("fsp-3", 0.03)]))
    first = {s.record["site_id"]: s.record["power_kw"] for s in drain(out["site.setpoints"])}
    assert asyncio.run(built.allocator.maybe_reallocate()) == []  # nothing changed
    clock.now = T0 + S
    built.book.update_telemetry(telemetry_record("site-03", T0 + S // 2, faulted=True))
    (again,) = asyncio.run(built.allocator.maybe_reallocate())
    assert again.excluded == {"site-03": "FAULTED"}
    changed = {s.record["site_id"]: s.record["power_kw"] for s in drain(out["site.setpoints"])}
    assert changed.pop("site-03") == 0.0  # the faulted site's share is taken back
    assert changed  # and moved to the others
    merged = {**{k: v for k, v in first.items() if k != "site-03"}, **changed}
    assert math.fsum(merged.values()) == pytest.approx(30.0, abs=1e-6)


def test_an_afrr_activation_and_a_foreign_fleet(built: StreamsApp) -> None:
    out = memory_outputs(built)
    act = activation_record(
        FLEET, "afrr-1", T0, product="AFRR", requested_mw=0.02, end_time=T0 + 600 * S
    )
    foreign = fleet_setpoint_record("other-fleet", "fsp-x", T0, 0.01, T0 + 60 * S)
    messages = [
        (FLEET.encode(), encode("MarketActivation", act)),
        (b"other-fleet", encode("FleetSetpoint", foreign)),
        (FLEET.encode(), encode("SiteTelemetry", telemetry_record("s", T0))),
    ]
    asyncio.run(feed(built, "allocator", messages))
    sent = drain(out["site.setpoints"])
    assert {(s.record["kind"], s.record["product"]) for s in sent} == {("ORDER", "AFRR")}
    assert math.fsum(s.record["power_kw"] for s in sent) == pytest.approx(20.0, abs=1e-6)
    letters = drain(out["deadletter"])
    assert [d.record["error_type"] for d in letters] == ["ForeignFleetError", "InvalidEventError"]
    assert letters[0].record["original"] == messages[1][1]


def test_command_results_derate_a_clamped_site(built: StreamsApp) -> None:
    out = memory_outputs(built)
    result = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "event_time": T0 - S // 2,
        "site_id": "site-01",
        "command_id": "c-1",
        "status": "CLAMPED",
        "requested_kw": 3.0,
        "written_kw": 3.0,
        "measured_kw": 0.5,
    }
    asyncio.run(feed(built, "command-results", [(b"site-01", encode("CommandResult", result))]))
    assert built.book.results["site-01"].measured_kw == 0.5
    asyncio.run(feed(built, "allocator", [fleet_setpoint("fsp-4", 1.0)]))
    shares = {s.record["site_id"]: s.record["power_kw"] for s in drain(out["site.setpoints"])}
    assert shares["site-01"] == pytest.approx(0.5)


def test_headroom_drift_does_not_re_split(built: StreamsApp, clock: ManualClock) -> None:
    """Fresh telemetry every second with a slightly different headroom changes the book but
    not the split: no setpoints go out until a site can no longer hold its share."""
    out = memory_outputs(built)
    asyncio.run(feed(built, "allocator", [fleet_setpoint("fsp-4", 0.03)]))
    first = {s.record["site_id"]: s.record["power_kw"] for s in drain(out["site.setpoints"])}
    for second in range(1, 4):
        clock.now = T0 + second * S
        for i, site in enumerate(SITES):
            drift = 0.05 * ((i + second) % 3 - 1)  # +-50 W around each site's headroom
            built.book.update_telemetry(
                telemetry_record(site, clock.now - S // 2, headroom_up_kw=2.0 + i % 4 + drift)
            )
        assert asyncio.run(built.allocator.maybe_reallocate()) == []
        assert drain(out["site.setpoints"]) == []
    # site-00 (2 kW of headroom, share first["site-00"]) drops to half its share: re-split.
    clock.now = T0 + 5 * S
    built.book.update_telemetry(
        telemetry_record("site-00", clock.now - S // 2, headroom_up_kw=first["site-00"] / 2)
    )
    assert len(asyncio.run(built.allocator.maybe_reallocate())) == 1
    changed = {s.record["site_id"]: s.record["power_kw"] for s in drain(out["site.setpoints"])}
    assert changed["site-00"] <= first["site-00"] / 2 + 1e-9


def assignment(asg_id: str, product: str, capacity_mw: float) -> tuple[bytes, bytes]:
    bands = {"FCR_N": (50.0, 49.9), "FCR_D_UP": (49.9, 49.5), "FCR_D_DOWN": (50.1, 50.5)}
    f_start, f_full = bands.get(product, (50.0, 49.9))
    record = {
        "event_id": derived_id("test-assignment", asg_id),
        "event_time": T0,
        "fleet_id": FLEET,
        "assignment_id": asg_id,
        "product": product,
        "capacity_mw": capacity_mw,
        "valid_from": T0,
        "valid_until": T0 + 3600 * S,
        "f_start_hz": f_start,
        "f_full_hz": f_full,
        "deadband_hz": 0.0,
    }
    return FLEET.encode(), encode("ReserveAssignment", record)


def test_three_reserves_armed_at_once_and_an_afrr_capacity_without_setpoints(
    built: StreamsApp, clock: ManualClock
) -> None:
    """FCR-N, FCR-D up and FCR-D down on the same homes: one allocation each, all in force;
    an aFRR capacity assignment arms nothing (its orders are split when they come)."""
    out = memory_outputs(built)
    messages = [
        assignment("n-1", "FCR_N", 0.010),
        assignment("up-1", "FCR_D_UP", 0.015),
        assignment("down-1", "FCR_D_DOWN", 0.020),
        assignment("afrr-cap", "AFRR", 0.5),
    ]
    asyncio.run(feed(built, "allocator", messages))
    sent = drain(out["site.setpoints"])
    assert drain(out["deadletter"]) == []
    by_product: dict[str, float] = {}
    per_site: dict[tuple[str, str], float] = {}
    for s in sent:
        assert s.record["kind"] == "ARM_RESERVE"
        reserve = s.record["reserve"]
        by_product[reserve["product"]] = (
            by_product.get(reserve["product"], 0.0) + (reserve["capacity_kw"])
        )
        per_site[s.record["site_id"], reserve["product"]] = reserve["capacity_kw"]
    assert by_product == pytest.approx({"FCR_N": 10.0, "FCR_D_UP": 15.0, "FCR_D_DOWN": 20.0})
    assert list(built.allocator.allocations.by_slot) == [
        Product.FCR_N,
        Product.FCR_D_UP,
        Product.FCR_D_DOWN,
    ]
    for i, site in enumerate(SITES):  # up: FCR-N + FCR-D up within the site's headroom
        up = per_site.get((site, "FCR_N"), 0.0) + per_site.get((site, "FCR_D_UP"), 0.0)
        assert up <= 2.0 + i % 4 + 1e-9
    # nothing changed in the book: the timer re-splits nothing
    clock.now = T0 + S
    assert asyncio.run(built.allocator.maybe_reallocate()) == []
