"""Several real workers on the real broker: the per-site work shared, one leader, the same
results from one worker or two, live or from a backlog.

One recorded input (sites reporting once a second for 12 s, an mFRR order and a fleet
setpoint in between, every record stamped in advance) is read three times, each under its
own prefix and app: live (produced at its own instants while two workers run), and as a
backlog (produced at once, then read) by one worker and by two. The FleetStates, the site
setpoints and the commands of the three runs must be the same records, and no worker may
drop a record as late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from contract.codec import encode
from contract.kafka.settings import KafkaSettings
from flowerhub.broker.probe import produce
from streams.app import prepare_topics, settings_with
from streams.settings import StreamsSettings
from streams.testing.agents import activation_record, fleet_setpoint_record, telemetry_record
from streams.testing.workers import outputs, workers
from streams.worker_process import Worker, wait_for

pytestmark = pytest.mark.integration

S = 1_000_000
PARTITIONS = 4
SITES = [f"home-{i:02d}" for i in range(24)]
SECONDS = 12
#: 1 s windows 0..11 and the 10 s windows [0, 10), [10, 20) once everything is silent
STATES = SECONDS + 2


def recorded_input(t0: int) -> list[tuple[int, str, bytes, bytes]]:
    """(instant, topic, key, value) in time order: the log every run reads."""
    out = []
    for k in range(SECONDS):
        for i, site in enumerate(SITES):
            t = t0 + k * S + (i * 37_000) % 900_000
            record = telemetry_record(
                site, t, battery_power_kw=(i % 5) - 2.0 + k / 10, headroom_up_kw=3.0 + i % 4
            )
            out.append((t, "site.telemetry", site.encode(), encode("SiteTelemetry", record)))
    order = activation_record(
        "flowerhub",
        "rec-mfrr",
        t0 + 5 * S + S // 2,
        product="MFRR",
        requested_mw=0.02,
        end_time=t0 + 60 * S,
    )
    out.append(
        (order["event_time"], "market.activations", b"flowerhub", encode("MarketActivation", order))
    )
    dispatch = fleet_setpoint_record("flowerhub", "rec-fsp", t0 + 7 * S + S // 2, 0.01, t0 + 60 * S)
    out.append(
        (
            dispatch["event_time"],
            "market.fleet-setpoints",
            b"flowerhub",
            encode("FleetSetpoint", dispatch),
        )
    )
    out.sort(key=lambda r: r[0])
    return out


def app(kafka: KafkaSettings, unique_name: Callable[[str], str], tag: str) -> StreamsSettings:
    app_id = unique_name(tag)
    settings = settings_with(bootstrap=kafka.bootstrap_servers, app_id=app_id, prefix=f"{app_id}.")
    asyncio.run(prepare_topics(settings, partitions=PARTITIONS))
    return settings


def produce_all(
    kafka: KafkaSettings, settings: StreamsSettings, log: list[tuple[int, str, bytes, bytes]]
) -> None:
    by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
    for _, name, key, value in log:
        by_topic.setdefault(settings.topic(name), []).append((key, value))
    for name, pairs in by_topic.items():
        asyncio.run(produce(kafka, name, pairs))


def produce_paced(
    kafka: KafkaSettings, settings: StreamsSettings, log: list[tuple[int, str, bytes, bytes]]
) -> None:
    """Each record at its own instant (the wall clock), in small groups."""
    i = 0
    while i < len(log):
        now = time.time_ns() // 1000
        if log[i][0] > now:
            time.sleep(min((log[i][0] - now) / S, 0.05))
            continue
        group = []
        while i < len(log) and log[i][0] <= now:
            group.append(log[i])
            i += 1
        produce_all(kafka, settings, group)


def results(kafka: KafkaSettings, settings: StreamsSettings) -> dict[str, list[dict[str, Any]]]:
    return {
        name: outputs(kafka, settings.topic(name))
        for name in ("fleet.state", "site.setpoints", "site.commands")
    }


def wait_results(
    kafka: KafkaSettings, settings: StreamsSettings, running: list[Worker]
) -> dict[str, list[dict[str, Any]]]:
    def done() -> dict[str, list[dict[str, Any]]] | None:
        found = results(kafka, settings)
        return found if len(found["fleet.state"]) >= STATES and found["site.commands"] else None

    wait_for(f"{STATES} FleetStates", running[0], done, timeout_s=90)
    time.sleep(2.0)  # anything emitted twice would show up now
    return results(kafka, settings)


def late_lines(running: list[Worker]) -> list[str]:
    return [
        line
        for w in running
        for line in w.log().splitlines()
        if "late telemetry record" in line or "taken late" in line
    ]


def comparable(found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "fleet.state": sorted(
            found["fleet.state"], key=lambda s: (s["window_s"], s["window_start"])
        ),
        "site.setpoints": sorted(found["site.setpoints"], key=lambda s: s["setpoint_id"]),
        "site.commands": sorted(found["site.commands"], key=lambda c: c["command_id"]),
    }


def test_one_or_two_workers_live_or_backlog_give_the_same_results(
    kafka: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    t0 = ((time.time_ns() // 1000) // (10 * S) + 1) * (10 * S)  # the next 10 s boundary
    log = recorded_input(t0)
    live = app(kafka, unique_name, "live")
    with workers(live, tmp_path / "live", 2, partitions=PARTITIONS) as running:
        produce_paced(kafka, live, log)
        live_out = wait_results(kafka, live, running)
        owned = [w.log().count("site-tasks: now owns partitions") for w in running]
        live_late = late_lines(running)
    assert all(owned), "each of the two workers owned partitions"

    backlog = {n: app(kafka, unique_name, f"backlog{n}") for n in (1, 2)}
    for settings in backlog.values():
        produce_all(kafka, settings, log)

    def run(n: int) -> tuple[dict[str, Any], list[str]]:
        settings = backlog[n]
        with workers(settings, tmp_path / f"backlog{n}", n, partitions=PARTITIONS) as running:
            return wait_results(kafka, settings, running), late_lines(running)

    with ThreadPoolExecutor(2) as pool:
        one, two = pool.map(run, (1, 2))

    reference = comparable(live_out)
    assert len(reference["fleet.state"]) == STATES
    assert {s["sites_online"] for s in reference["fleet.state"]} == {len(SITES)}
    assert {sp["source_id"] for sp in reference["site.setpoints"]} == {"rec-mfrr", "rec-fsp"}
    assert comparable(one[0]) == reference
    assert comparable(two[0]) == reference
    assert live_late == one[1] == two[1] == []
