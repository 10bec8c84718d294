"""The streams app on the real broker, run as ``flowerhub streams worker`` subprocesses.

Each test has its own app id and topic prefix, creates its topics with
``streams.app.prepare_topics`` (two partitions each, to stay quick) and waits for the
worker's ready line (app tasks start after table recovery: events sent earlier could be
lost or doubled by Faust 0.15.3, see tests/integration/faust_smoke_app.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contract.codec import decode, encode
from contract.kafka.settings import KafkaSettings
from contract.testing.metrics import Scrape, scrape
from flowerhub.broker.probe import Record, group_lag, produce, read_to_end
from flowerhub.cli import main
from streams.agents.batching import murmur2_partition
from streams.agents.groups import group_id as telemetry_group
from streams.app import prepare_topics, settings_with
from streams.settings import StreamsSettings
from streams.steps.setpoint_filter import FilterState
from streams.testing.agents import fleet_setpoint_record, setpoint_record, telemetry_record
from streams.worker_process import Worker, metrics_url, wait_for
from streams.worker_process import streams_worker as run_streams_worker

S = 1_000_000
PARTITIONS = 2


def now_us() -> int:
    return time.time_ns() // 1000


def settings_for(bootstrap: str, app_id: str) -> StreamsSettings:
    return settings_with(bootstrap=bootstrap, app_id=app_id, prefix=f"{app_id}.")


@contextmanager
def streams_worker(
    settings: StreamsSettings,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    metrics: bool = False,
) -> Iterator[Worker]:
    """``streams.worker_process.streams_worker`` with this module's partitions; the log level
    from FLOWERHUB_TEST_WORKER_LOGLEVEL (default info)."""
    loglevel = os.environ.get("FLOWERHUB_TEST_WORKER_LOGLEVEL", "info")
    with run_streams_worker(
        settings, workdir, partitions=PARTITIONS, loglevel=loglevel, env=env, metrics=metrics
    ) as worker:
        yield worker


def topic(settings: StreamsSettings, name: str) -> str:
    return settings.topic(name)


async def read_events(kafka: KafkaSettings, name: str) -> list[tuple[Record, str, dict[str, Any]]]:
    out = []
    for r in await read_to_end(kafka, [name]):
        assert r.value is not None
        decoded = decode(r.value)
        out.append((r, decoded.name, decoded.record))
    return out


def encoded(event: str, records: list[dict[str, Any]], key: str) -> list[tuple[bytes, bytes]]:
    return [(r[key].encode(), encode(event, r)) for r in records]


@pytest.mark.integration
def test_a_fleet_setpoint_becomes_commands_for_1000_sites(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, unique_name("alloc"))
    asyncio.run(prepare_topics(settings, partitions=PARTITIONS))
    t0 = now_us()
    sites = [f"site-{i:04d}" for i in range(1000)]
    telemetry = [
        telemetry_record(site, t0, headroom_up_kw=4.0 + (i % 7), oem=("huawei", "saj")[i % 2])
        for i, site in enumerate(sites)
    ]
    asyncio.run(
        produce(
            settings,
            topic(settings, "site.telemetry"),
            encoded("SiteTelemetry", telemetry, "site_id"),
        )
    )
    # a loaded CI machine can take seconds per hop: the age limits are not under test here
    env = {"FLOWERHUB_ALLOCATOR__TELEMETRY_MAX_AGE_S": "300", "FLOWERHUB_FILTER__MAX_AGE_S": "120"}
    with streams_worker(settings, tmp_path, env) as worker:
        wait_for(
            "telemetry consumed",
            worker,
            lambda: (
                asyncio.run(
                    group_lag(
                        settings,
                        telemetry_group(settings),
                        topic(settings, "site.telemetry"),
                    )
                )
                == 0
            ),
        )
        target_mw = 5.0  # capacity is sum(4 + i % 7) kW ~ 7 MW: fully served
        order = fleet_setpoint_record(
            settings.fleet_id, "fsp-1", now_us(), target_mw, now_us() + 60 * S
        )
        asyncio.run(
            produce(
                settings,
                topic(settings, "market.fleet-setpoints"),
                encoded("FleetSetpoint", [order], "fleet_id"),
            )
        )
        commands_topic = topic(settings, "site.commands")

        def all_commands() -> list[dict[str, Any]] | None:
            events = asyncio.run(read_events(settings, commands_topic))
            return [rec for _, _, rec in events] if len(events) >= len(sites) else None

        commands = wait_for("1000 commands", worker, all_commands, timeout_s=40)
    assert sorted(c["site_id"] for c in commands) == sites
    assert len({c["command_id"] for c in commands}) == len(sites)
    assert all(c["kind"] == "SET_POWER" for c in commands)
    total_kw = math.fsum(c["power_kw"] for c in commands)
    assert total_kw == pytest.approx(target_mw * 1000.0, abs=1e-6)
    for c, tel in zip(sorted(commands, key=lambda c: c["site_id"]), telemetry, strict=True):
        assert 0 < c["power_kw"] <= tel["headroom_up_kw"] + 1e-9
    # the filter's batched changelog: one record per site, Faust's JSON key and value, on
    # the partition of the site's setpoint (the table is partitioned like site.setpoints),
    # and each partition's clock under the key ""
    changelog = asyncio.run(read_to_end(settings, [f"{settings.app_id}-filter-state-changelog"]))
    by_site = {json.loads(r.key or b"null"): r for r in changelog}
    clocks = {r.partition for r in changelog if r.key == b'""'}
    assert clocks == set(range(PARTITIONS))
    by_site.pop("")
    assert sorted(by_site) == sites
    for site, r in by_site.items():
        assert r.partition == murmur2_partition(site.encode(), PARTITIONS)
        assert r.value is not None
        state = FilterState.from_dict(json.loads(r.value))
        assert state.last_setpoint_id in {
            c["setpoint_id"] for c in commands if c["site_id"] == site
        }


@pytest.mark.integration
def test_a_killed_worker_recovers_its_filter_table_and_sends_no_duplicate(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, unique_name("restart"))
    asyncio.run(prepare_topics(settings, partitions=PARTITIONS))
    # staleness and the deferred write are out of the way: only the table can stop a repeat
    env = {"FLOWERHUB_FILTER__MAX_AGE_S": "600", "FLOWERHUB_FILTER__MIN_INTERVAL_S": "600"}
    sites = [f"site-{i:03d}" for i in range(60)]
    setpoints_topic = topic(settings, "site.setpoints")
    commands_topic = topic(settings, "site.commands")
    changelog = f"{settings.app_id}-filter-state-changelog"

    def batch(tag: str, t: int, power: float) -> list[tuple[bytes, bytes]]:
        records = [setpoint_record(s, f"{tag}-{s}", t, power, t + 600 * S) for s in sites]
        return encoded("SiteSetpoint", records, "site_id")

    def commands_by_setpoint() -> Counter[str]:
        events = asyncio.run(read_events(settings, commands_topic))
        return Counter(rec["setpoint_id"] for _, _, rec in events)

    with streams_worker(settings, tmp_path, env) as worker:
        asyncio.run(produce(settings, setpoints_topic, batch("a", now_us(), 3.0)))
        wait_for("first commands", worker, lambda: len(commands_by_setpoint()) == len(sites))
        wait_for(
            "filter state in the changelog",
            worker,
            lambda: (
                {r.key for r in asyncio.run(read_to_end(settings, [changelog]))}
                >= {f'"{s}"'.encode() for s in sites}
            ),
        )
        worker.proc.send_signal(signal.SIGKILL)  # mid-stream: offsets may be uncommitted
        worker.proc.wait()

    with streams_worker(settings, tmp_path, env) as worker:
        t = now_us()
        # per site, in order: a small change (gated if the state was recovered), then a ramp
        small = batch("b", t, 3.2)
        ramp = batch("c", t + 1, 6.0)
        asyncio.run(
            produce(
                settings,
                setpoints_topic,
                [pair for pairs in zip(small, ramp, strict=True) for pair in pairs],
            )
        )
        wait_for(
            "ramp commands",
            worker,
            lambda: all(commands_by_setpoint()[f"c-{s}"] == 1 for s in sites),
        )
        time.sleep(1.0)  # a late duplicate would show up now
        events = asyncio.run(read_events(settings, commands_topic))
    per_setpoint = Counter(rec["setpoint_id"] for _, _, rec in events)
    per_command = Counter(rec["command_id"] for _, _, rec in events)
    assert set(per_setpoint) == {f"{tag}-{s}" for tag in ("a", "c") for s in sites}
    assert max(per_setpoint.values()) == 1, per_setpoint.most_common(3)
    assert max(per_command.values()) == 1


@pytest.mark.integration
def test_garbage_goes_to_deadletter_while_good_events_flow(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, unique_name("dlq"))
    asyncio.run(prepare_topics(settings, partitions=PARTITIONS))
    setpoints_topic = topic(settings, "site.setpoints")
    telemetry_topic = topic(settings, "site.telemetry")
    garbage = [b"not avro at all", b"\xc3\x01" + b"\xff" * 8 + b"body", b""]
    env = {"FLOWERHUB_FILTER__MAX_AGE_S": "120"}
    with streams_worker(settings, tmp_path, env, metrics=True) as worker:
        url = metrics_url(worker)
        before = scrape(url)  # served from the start: every filter reason at 0
        assert before.value("flowerhub_filter_setpoints_total") == 0
        t = now_us()
        good = [setpoint_record(f"site-{i}", f"sp-{i}", t, 2.0, t + 60 * S) for i in range(4)]
        stale = setpoint_record("site-s", "sp-s", t - 300 * S, 2.0, t + 60 * S)
        pairs = encoded("SiteSetpoint", good, "site_id")
        dropped = encoded("SiteSetpoint", [good[0], stale], "site_id")  # DUPLICATE, STALE
        mixed = [pairs[0], (b"site-x", garbage[0]), pairs[1], (b"site-y", garbage[1]), *pairs[2:]]
        mixed += dropped
        asyncio.run(produce(settings, setpoints_topic, mixed))
        asyncio.run(produce(settings, telemetry_topic, [(b"site-z", garbage[2])]))
        # one more good setpoint through `flowerhub streams send` (event_id, event_time filled)
        cli_setpoint = {
            "site_id": "site-4",
            "setpoint_id": "sp-4",
            "kind": "SET_POWER",
            "power_kw": 2.5,
            "valid_until": now_us() + 60 * S,
        }
        argv = ["streams", "send", "site.setpoints", json.dumps(cli_setpoint)]
        assert main([*argv, "--bootstrap", kafka_bootstrap, "--prefix", settings.topic_prefix]) == 0

        def letters() -> list[dict[str, Any]] | None:
            events = asyncio.run(read_events(settings, settings.topic("deadletter")))
            return [rec for _, _, rec in events] if len(events) >= len(garbage) else None

        dead = wait_for("dead letters", worker, letters)
        commands = wait_for(
            "commands",
            worker,
            lambda: (
                events
                if len(
                    events := asyncio.run(read_events(settings, settings.topic("site.commands")))
                )
                >= len(good) + 1
                else None
            ),
        )

        def settled() -> Scrape | None:
            page = scrape(url)
            done = page.value("flowerhub_filter_setpoints_total") >= len(good) + 3
            return page if done else None

        page = wait_for("the filter's counts on /metrics", worker, settled)
        worker.check_alive()
    by_original = {d["original"]: d for d in dead}
    # /metrics of the running worker, parsed by prometheus_client: what the filter did with
    # each setpoint, the dead letters by reason, the consumers' lag and records
    filtered = "flowerhub_filter_setpoints_total"
    assert page.value(filtered, reason="FIRST", outcome="written") == len(good) + 1
    assert page.value(filtered, reason="DUPLICATE", outcome="dropped") == 1
    assert page.value(filtered, reason="STALE", outcome="dropped") == 1
    assert page.value(filtered, outcome="held") == 0
    dlq = "flowerhub_dead_letters_total"
    assert page.value(dlq, consumer="setpoint-filter", error_type="BadMagicError") == 1
    assert page.value(dlq, error_type="UnknownFingerprintError") == 1
    assert page.value(dlq, error_type="TruncatedEventError") == 1  # the telemetry's
    # one group for the per-site work of every worker (telemetry and setpoints partitions)
    sites = f"{settings.app_id}-sites"
    groups = {s.labels["group"] for s in page.samples("flowerhub_consumer_lag_records")}
    assert sites in groups
    records = page.value("flowerhub_consumer_records_total", group=sites, topic=setpoints_topic)
    assert records == len(mixed) + 1  # and the one `flowerhub streams send` sent
    assert page.value("flowerhub_worker_leading") == 1  # the only worker leads
    assert page.value("flowerhub_telemetry_late_records_total") == 0
    assert page.value("flowerhub_kafka_records_acked_total") >= len(good) + 1 + len(garbage)
    assert page.value("flowerhub_kafka_records_rejected_total") == 0
    assert page.has("flowerhub_fleet_sites")
    assert page.value("process_cpu_seconds_total") > 0
    assert set(by_original) == set(garbage)
    assert by_original[garbage[0]]["source_topic"] == setpoints_topic
    assert by_original[garbage[0]]["key"] == b"site-x"
    assert by_original[garbage[0]]["error_type"] == "BadMagicError"
    assert by_original[garbage[1]]["error_type"] == "UnknownFingerprintError"
    assert by_original[garbage[2]]["source_topic"] == telemetry_topic
    assert all(d["reason"] and d["consumer"] for d in dead)
    assert sorted(rec["setpoint_id"] for _, _, rec in commands) == [f"sp-{i}" for i in range(5)]
