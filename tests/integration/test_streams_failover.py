"""Faults of the workers themselves, on the real broker with two real worker processes and
sites reporting live: the leader killed with -9 while an FCR-D up reserve is armed and an
mFRR order is in force, the leader frozen (SIGSTOP) past its session timeout and resumed,
both workers restarted. Each time: one leader acts, every window has one FleetState, every
share is sent once, and the state comes back from Kafka.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contract.codec import encode
from contract.kafka.settings import KafkaSettings
from flowerhub.broker.probe import produce
from streams.app import prepare_topics, settings_with
from streams.settings import StreamsSettings
from streams.steps.ids import derived_id
from streams.testing.agents import activation_record
from streams.testing.live import LiveTelemetry
from streams.testing.workers import leader_of, leads, outputs, wait_leader, workers
from streams.worker_process import Worker, wait_for

pytestmark = pytest.mark.integration

S = 1_000_000
PARTITIONS = 4
SITES = [f"home-{i:02d}" for i in range(16)]


def now_us() -> int:
    return time.time_ns() // 1000


@contextmanager
def fleet(
    kafka: KafkaSettings, unique_name: Callable[[str], str], tag: str
) -> Iterator[tuple[StreamsSettings, LiveTelemetry]]:
    app_id = unique_name(tag)
    settings = settings_with(bootstrap=kafka.bootstrap_servers, app_id=app_id, prefix=f"{app_id}.")
    asyncio.run(prepare_topics(settings, partitions=PARTITIONS))
    with LiveTelemetry(kafka, settings.topic("site.telemetry"), SITES) as live:
        yield settings, live


def send_fleet(
    kafka: KafkaSettings, settings: StreamsSettings, name: str, event: str, record: dict[str, Any]
) -> None:
    asyncio.run(produce(kafka, settings.topic(name), [(b"flowerhub", encode(event, record))]))


def order(kafka: KafkaSettings, settings: StreamsSettings, act_id: str, mw: float) -> None:
    t = now_us()
    record = activation_record(
        "flowerhub", act_id, t, product="MFRR", requested_mw=mw, end_time=t + 300 * S
    )
    send_fleet(kafka, settings, "market.activations", "MarketActivation", record)


def arm_fcr_d_up(kafka: KafkaSettings, settings: StreamsSettings, asg_id: str) -> None:
    t = now_us()
    record = {
        "event_id": derived_id("test-assignment", asg_id),
        "event_time": t,
        "fleet_id": "flowerhub",
        "assignment_id": asg_id,
        "product": "FCR_D_UP",
        "capacity_mw": 0.016,
        "valid_from": t,
        "valid_until": t + 300 * S,
        "f_start_hz": 49.9,
        "f_full_hz": 49.5,
        "deadband_hz": 0.0,
    }
    send_fleet(kafka, settings, "reserve.assignments", "ReserveAssignment", record)


def per_source(kafka: KafkaSettings, settings: StreamsSettings) -> Counter[str]:
    return Counter(sp["source_id"] for sp in outputs(kafka, settings.topic("site.setpoints")))


def wait_split(
    kafka: KafkaSettings, settings: StreamsSettings, worker: Worker, sources: set[str]
) -> None:
    wait_for(
        f"setpoints of {sorted(sources)}",
        worker,
        lambda: all(per_source(kafka, settings)[s] >= len(SITES) for s in sources),
        timeout_s=60,
    )


def states(kafka: KafkaSettings, settings: StreamsSettings) -> list[dict[str, Any]]:
    return outputs(kafka, settings.topic("fleet.state"))


def check_once(
    kafka: KafkaSettings, settings: StreamsSettings, sources: set[str]
) -> list[dict[str, Any]]:
    """One FleetState per window, one split per request, and a command id repeated only with
    the same content (the bridge applies a command id once)."""
    found = states(kafka, settings)
    windows = Counter((s["window_s"], s["window_start"]) for s in found)
    assert max(windows.values()) == 1, windows.most_common(3)
    counts = per_source(kafka, settings)
    assert {s: counts[s] for s in sources} == dict.fromkeys(sources, len(SITES)), counts
    by_id: dict[str, list[dict[str, Any]]] = {}
    for c in outputs(kafka, settings.topic("site.commands")):
        by_id.setdefault(c["command_id"], []).append(c)
    assert all(all(r == same[0] for r in same) for same in by_id.values())
    return found


def test_a_killed_leader_is_replaced_and_a_restart_of_both_recovers_from_kafka(
    kafka: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    sources = {"fcrd-up-1", "mfrr-1"}
    with fleet(kafka, unique_name, "kill") as (settings, _):
        with workers(settings, tmp_path / "a", 2, partitions=PARTITIONS) as running:
            leader = wait_leader(running)
            arm_fcr_d_up(kafka, settings, "fcrd-up-1")
            order(kafka, settings, "mfrr-1", 0.008)
            wait_split(kafka, settings, leader, sources)
            before = len(states(kafka, settings))
            leader.proc.send_signal(signal.SIGKILL)  # while FCR-D up is armed, mid-order
            killed_at = time.monotonic()
            leader.proc.wait()
            survivor = next(w for w in running if w is not leader)
            wait_for(
                "a FleetState from the survivor",
                survivor,
                lambda: len(states(kafka, settings)) > before,
            )
            takeover_s = time.monotonic() - killed_at
            killed_us = now_us()
            assert leads(survivor)
            wait_for(
                "complete windows after the takeover",
                survivor,
                lambda: [
                    s
                    for s in states(kafka, settings)
                    if s["window_s"] == 1 and s["window_start"] > killed_us
                ][2:],
                timeout_s=30,
            )
            found = check_once(kafka, settings, sources)
            after = [s for s in found if s["window_s"] == 1 and s["window_start"] > killed_us]
            assert {s["sites_online"] for s in after} == {len(SITES)}  # its partitions moved
        assert takeover_s < 15, takeover_s
        # both stopped (SIGTERM); two new workers take everything back from Kafka
        with workers(settings, tmp_path / "b", 2, partitions=PARTITIONS) as running:
            leader = wait_leader(running)
            wait_for("the allocations restored", leader, lambda: "2 allocation(s)" in leader.log())
            mark = len(states(kafka, settings))
            wait_for("new windows", leader, lambda: len(states(kafka, settings)) >= mark + 4)
            check_once(kafka, settings, sources)  # no share sent again


def test_a_frozen_leader_is_fenced_and_does_not_act_when_it_resumes(
    kafka: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    with (
        fleet(kafka, unique_name, "stop") as (settings, _),
        workers(settings, tmp_path, 2, partitions=PARTITIONS) as running,
    ):
        leader = wait_leader(running)
        order(kafka, settings, "mfrr-1", 0.008)
        wait_split(kafka, settings, leader, {"mfrr-1"})
        leader.proc.send_signal(signal.SIGSTOP)
        try:
            survivor = next(w for w in running if w is not leader)
            wait_for("the survivor leads", survivor, lambda: leads(survivor), timeout_s=30)
            order(kafka, settings, "mfrr-2", 0.004)
            wait_split(kafka, settings, survivor, {"mfrr-2"})
        finally:
            leader.proc.send_signal(signal.SIGCONT)
        wait_for(
            "the resumed worker steps down",
            leader,
            lambda: "FENCED OUT" in leader.log() or "no longer leading" in leader.log(),
            timeout_s=30,
        )
        mark = len(states(kafka, settings))
        wait_for("new windows", survivor, lambda: len(states(kafka, settings)) >= mark + 4)
        assert leader_of(running) is not None  # exactly one leads
        check_once(kafka, settings, {"mfrr-1", "mfrr-2"})
