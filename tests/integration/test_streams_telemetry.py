"""The worker's telemetry service on the real broker (``flowerhub streams worker`` subprocesses).

SiteTelemetry -> FleetState over 1 s and 10 s windows (each closed window once, the right
sums), garbage -> ``deadletter`` with the original bytes while good telemetry flows, the
site book fed (the allocator serves the sites the service saw), offsets committed in the
service's own group once the outputs are acknowledged, and an orderly SIGTERM: the worker
leaves with its low-water offsets committed and a restarted worker emits every window once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contract.codec import decode_raw, encode
from contract.kafka.settings import KafkaSettings
from flowerhub.broker.probe import group_lag, produce, read_to_end
from streams.agents.groups import group_id
from streams.app import prepare_topics, settings_with
from streams.settings import StreamsSettings
from streams.testing.agents import fleet_setpoint_record, telemetry_record
from streams.worker_process import Worker, stop, wait_for
from streams.worker_process import streams_worker as run_streams_worker

S = 1_000_000
PARTITIONS = 2
POWER = {"site-a": 2.0, "site-b": -1.5, "site-c": 4.25}
OEM = {"site-a": "huawei", "site-b": "saj", "site-c": "sungrow"}


@contextmanager
def streams_worker(
    settings: StreamsSettings, workdir: Path, env: Mapping[str, str] | None = None
) -> Iterator[Worker]:
    with run_streams_worker(settings, workdir, partitions=PARTITIONS, env=env) as worker:
        yield worker


def seconds(t0: int, first: int, last: int) -> list[tuple[bytes, bytes]]:
    """Telemetry of every site at t0 + k s + 0.2 s for k in first..last."""
    return [
        (
            site.encode(),
            encode(
                "SiteTelemetry",
                telemetry_record(
                    site, t0 + k * S + S // 5, oem=OEM[site], battery_power_kw=power + k / 100
                ),
            ),
        )
        for k in range(first, last + 1)
        for site, power in POWER.items()
    ]


def events_of(kafka: KafkaSettings, name: str) -> list[dict[str, Any]]:
    out = []
    for r in asyncio.run(read_to_end(kafka, [name])):
        assert r.value is not None
        out.append(decode_raw(r.value).record)
    return out


def lag(settings: StreamsSettings) -> int:
    return asyncio.run(group_lag(settings, group_id(settings), settings.topic("site.telemetry")))


@pytest.mark.integration
def test_telemetry_becomes_fleet_states_and_garbage_dead_letters(
    kafka: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    app_id = unique_name("tel")
    settings = settings_with(bootstrap=kafka.bootstrap_servers, app_id=app_id, prefix=f"{app_id}.")
    asyncio.run(prepare_topics(settings, partitions=PARTITIONS))
    telemetry_topic = settings.topic("site.telemetry")
    t0 = (time.time_ns() // 1000) // (10 * S) * (10 * S)  # windows start on t0
    garbage = [(b"site-x", b"not avro"), (b"site-y", b"\xc3\x01short")]
    env = {"FLOWERHUB_ALLOCATOR__TELEMETRY_MAX_AGE_S": "600", "FLOWERHUB_FILTER__MAX_AGE_S": "120"}
    with streams_worker(settings, tmp_path, env) as worker:
        first = seconds(t0, 0, 5)
        asyncio.run(produce(kafka, telemetry_topic, [*first[:4], *garbage, *first[4:]]))
        asyncio.run(produce(kafka, telemetry_topic, seconds(t0, 6, 11)))

        def states() -> list[dict[str, Any]] | None:
            found = events_of(kafka, settings.topic("fleet.state"))
            return found if len(found) >= 11 else None

        fleet = wait_for("11 FleetStates", worker, states)

        def letters() -> list[dict[str, Any]] | None:
            found = events_of(kafka, settings.topic("deadletter"))
            return found if len(found) >= len(garbage) else None

        dead = wait_for("2 dead letters", worker, letters)
        wait_for("telemetry committed", worker, lambda: lag(settings) == 0)
        # the book the service fed: the allocator serves those three sites
        now = time.time_ns() // 1000
        order = fleet_setpoint_record(settings.fleet_id, "fsp-tel", now, 0.003, now + 600 * S)
        asyncio.run(
            produce(
                kafka,
                settings.topic("market.fleet-setpoints"),
                [(settings.fleet_id.encode(), encode("FleetSetpoint", order))],
            )
        )

        def commands_sent() -> list[dict[str, Any]] | None:
            found = events_of(kafka, settings.topic("site.commands"))
            return found if len(found) >= len(POWER) else None

        commands = wait_for("3 commands", worker, commands_sent)
        time.sleep(1.0)  # a window emitted twice would show up now
        fleet = events_of(kafka, settings.topic("fleet.state"))
    ones = sorted((s for s in fleet if s["window_s"] == 1), key=lambda s: s["window_start"])
    tens = [s for s in fleet if s["window_s"] == 10]
    # the last record at t0 + 11.2 s; once the partitions are silent for idle_s (2 s) their
    # stream time follows the clock: every window closes, the 1 s windows 0..11 and the 10 s
    # windows [0, 10) and [10, 20)
    assert [s["window_start"] for s in ones] == [t0 + k * S for k in range(12)]
    assert sorted(s["window_start"] for s in tens) == [t0, t0 + 10 * S]
    tens.sort(key=lambda s: s["window_start"])
    assert max(Counter(s["event_id"] for s in fleet).values()) == 1
    for k, state in enumerate(ones):
        assert state["total_power_mw"] == pytest.approx(
            math.fsum(p + k / 100 for p in POWER.values()) / 1000
        )
        assert state["sites_online"] == 3
        assert [o["oem"] for o in state["per_oem"]] == ["huawei", "saj", "sungrow"]
    assert tens[0]["total_power_mw"] == pytest.approx(
        math.fsum(p + 9 / 100 for p in POWER.values()) / 1000
    )
    assert sorted((d["key"], d["original"]) for d in dead) == sorted(garbage)
    assert {d["source_topic"] for d in dead} == {telemetry_topic}
    assert {d["consumer"] for d in dead} == {"fleet-aggregator"}
    assert sorted(c["site_id"] for c in commands) == sorted(POWER)


@pytest.mark.integration
def test_a_stopped_worker_has_committed_and_a_restart_emits_no_window_twice(
    kafka: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    app_id = unique_name("telstop")
    settings = settings_with(bootstrap=kafka.bootstrap_servers, app_id=app_id, prefix=f"{app_id}.")
    asyncio.run(prepare_topics(settings, partitions=PARTITIONS))
    telemetry_topic = settings.topic("site.telemetry")
    states_topic = settings.topic("fleet.state")
    t0 = (time.time_ns() // 1000) // (10 * S) * (10 * S)

    def ones(k: int) -> Callable[[], list[dict[str, Any]] | None]:
        def check() -> list[dict[str, Any]] | None:
            found = [s for s in events_of(kafka, states_topic) if s["window_s"] == 1]
            return found if len(found) >= k else None

        return check

    with streams_worker(settings, tmp_path) as worker:
        asyncio.run(produce(kafka, telemetry_topic, seconds(t0, 0, 5)))
        wait_for("1 s windows 0..3", worker, ones(4))
        stop(worker)  # SIGTERM: the batch in hand finishes, offsets committed, group left
        assert worker.proc.returncode == 0, worker.tail()
        # committed: the low-water offset, the first record a window still open may need:
        # the 10 s window [0, 10) holds every record so far
        assert lag(settings) == 6 * len(POWER)
        assert "Error while stopping child" not in worker.log()
    with streams_worker(settings, tmp_path) as worker:
        asyncio.run(produce(kafka, telemetry_topic, seconds(t0, 6, 14)))
        # the last record at 14.2 s; the partitions silent, every window closes
        wait_for("1 s windows 0..14", worker, ones(15))
        wait_for(
            "10 s windows [0, 10), [10, 20)",
            worker,
            lambda: sum(s["window_s"] == 10 for s in events_of(kafka, states_topic)) >= 2,
        )
        time.sleep(1.0)
        fleet = events_of(kafka, states_topic)
    starts = Counter((s["window_s"], s["window_start"]) for s in fleet)
    assert max(starts.values()) == 1, starts.most_common(3)
    one_starts = sorted(start for w, start in starts if w == 1)
    # the windows open at the stop were re-read from Kafka by the restarted worker: every
    # window once, none lost
    assert one_starts == [t0 + k * S for k in range(15)]
    assert sorted(start for w, start in starts if w == 10) == [t0, t0 + 10 * S]
