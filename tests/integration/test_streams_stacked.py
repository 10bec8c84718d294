"""Stacked products through the real worker (``flowerhub streams worker`` subprocess, real
broker): FCR-N, FCR-D up and FCR-D down armed on the same homes, an mFRR order as changes
against the homes' baselines and its end; the fleet state's baseline and per-product
figures from the homes' telemetry."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contract.codec import decode, encode
from contract.kafka.settings import KafkaSettings
from flowerhub.broker.probe import group_lag, produce, read_to_end
from streams.agents.groups import group_id as telemetry_group
from streams.app import prepare_topics, settings_with
from streams.settings import StreamsSettings
from streams.steps.ids import derived_id
from streams.testing.agents import activation_record, telemetry_record
from streams.worker_process import Worker, wait_for
from streams.worker_process import streams_worker as run_streams_worker

S = 1_000_000
PARTITIONS = 2
SITES = [f"home-{i:03d}" for i in range(120)]
BANDS = {"FCR_N": (50.0, 49.9), "FCR_D_UP": (49.9, 49.5), "FCR_D_DOWN": (50.1, 50.5)}
ARMED_KW = {"FCR_N": 1.0, "FCR_D_UP": 1.5, "FCR_D_DOWN": 2.0}  # per home: all fit


def now_us() -> int:
    return time.time_ns() // 1000


@contextmanager
def worker(settings: StreamsSettings, workdir: Path) -> Iterator[Worker]:
    env = {"FLOWERHUB_ALLOCATOR__TELEMETRY_MAX_AGE_S": "300", "FLOWERHUB_FILTER__MAX_AGE_S": "120"}
    loglevel = os.environ.get("FLOWERHUB_TEST_WORKER_LOGLEVEL", "info")
    with run_streams_worker(
        settings, workdir, partitions=PARTITIONS, loglevel=loglevel, env=env
    ) as running:
        yield running


async def events(kafka: KafkaSettings, name: str) -> list[dict[str, Any]]:
    out = []
    for r in await read_to_end(kafka, [name]):
        assert r.value is not None
        out.append(decode(r.value).record)
    return out


def assignment(fleet: str, product: str, t: int) -> dict[str, Any]:
    f_start, f_full = BANDS[product]
    return {
        "event_id": derived_id("it-assignment", product, t),
        "event_time": t,
        "fleet_id": fleet,
        "assignment_id": f"asg-{product}",
        "product": product,
        "capacity_mw": ARMED_KW[product] * len(SITES) / 1000.0,
        "valid_from": t,
        "valid_until": t + 3600 * S,
        "f_start_hz": f_start,
        "f_full_hz": f_full,
        "deadband_hz": 0.0,
    }


@pytest.mark.integration
def test_three_reserves_and_an_order_on_the_same_homes(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    app_id = unique_name("stacked")
    settings = settings_with(bootstrap=kafka_bootstrap, app_id=app_id, prefix=f"{app_id}.")
    asyncio.run(prepare_topics(settings, partitions=PARTITIONS))
    t0 = now_us()

    # every home covers 0.5 kW of its own load (its baseline), 4-8 kW of room left upwards
    def telemetry(t: int) -> list[tuple[bytes, bytes]]:
        records = [
            telemetry_record(
                site,
                t,
                battery_power_kw=0.5,
                baseline_kw=0.5,
                headroom_up_kw=4.0 + i % 5,
                stacked={"armed_fcr_n_kw": 1.0} if i % 2 else {},
            )
            for i, site in enumerate(SITES)
        ]
        return [(r["site_id"].encode(), encode("SiteTelemetry", r)) for r in records]

    commands_topic = settings.topic("site.commands")
    telemetry_topic = settings.topic("site.telemetry")
    fleet = settings.fleet_id
    with worker(settings, tmp_path) as running:
        # one second of every home's telemetry, read by the worker before the next second
        # closes its window (the two partitions' events then all fall in it)
        asyncio.run(produce(settings, telemetry_topic, telemetry(t0)))
        wait_for(
            "the homes in the worker's book",
            running,
            lambda: (
                asyncio.run(group_lag(settings, telemetry_group(settings), telemetry_topic)) == 0
            ),
        )
        asyncio.run(produce(settings, telemetry_topic, telemetry(t0 + 2 * S)))
        wait_for(
            "the first second's fleet state",
            running,
            lambda: bool(asyncio.run(events(settings, settings.topic("fleet.state")))),
        )
        t = now_us()
        orders = [
            (fleet.encode(), encode("ReserveAssignment", assignment(fleet, p, t))) for p in ARMED_KW
        ]
        asyncio.run(produce(settings, settings.topic("reserve.assignments"), orders))

        def arms() -> list[dict[str, Any]] | None:
            got = asyncio.run(events(settings, commands_topic))
            return got if len(got) >= 3 * len(SITES) else None

        wait_for("three arms per home", running, arms, timeout_s=60)
        mfrr = activation_record(
            fleet, "mfrr-1", now_us(), product="MFRR", requested_mw=0.12, end_time=t + 900 * S
        )
        end = activation_record(
            fleet, "mfrr-2", now_us() + 1, product="MFRR", requested_mw=0.0, end_time=t + 900 * S
        )
        asyncio.run(
            produce(
                settings,
                settings.topic("market.activations"),
                [(fleet.encode(), encode("MarketActivation", mfrr))],
            )
        )

        def ordered() -> list[dict[str, Any]] | None:
            got = asyncio.run(events(settings, commands_topic))
            return got if len(got) >= 4 * len(SITES) else None

        wait_for("an order change per home", running, ordered, timeout_s=60)
        asyncio.run(
            produce(
                settings,
                settings.topic("market.activations"),
                [(fleet.encode(), encode("MarketActivation", end))],
            )
        )

        def ended() -> list[dict[str, Any]] | None:
            got = asyncio.run(events(settings, commands_topic))
            return got if len(got) >= 5 * len(SITES) else None

        commands = wait_for("the order's end at every home", running, ended, timeout_s=60)
        states = asyncio.run(events(settings, settings.topic("fleet.state")))
        running.check_alive()

    capacity: dict[str, float] = defaultdict(float)
    per_home: dict[tuple[str, str], float] = {}
    changes: dict[str, list[float]] = defaultdict(list)
    for c in commands:
        if c["kind"] == "ARM_RESERVE":
            product = c["reserve"]["product"]
            capacity[product] += c["reserve"]["capacity_kw"]
            per_home[c["site_id"], product] = c["reserve"]["capacity_kw"]
        else:
            assert (c["kind"], c["product"]) == ("ORDER", "MFRR")
            changes[c["site_id"]].append(c["power_kw"])
    for product, kw in ARMED_KW.items():
        assert capacity[product] == pytest.approx(kw * len(SITES), abs=1e-6)
    for i, site in enumerate(SITES):  # FCR-N and FCR-D up together within each home's room
        up = per_home[site, "FCR_N"] + per_home[site, "FCR_D_UP"]
        room = 4.0 + i % 5 + (1.0 if i % 2 else 0.0)  # headroom + the FCR-N it already held
        assert up <= room + 1e-9
    # the order: changes against each home's baseline summing to 0.12 MW, then 0 everywhere
    assert sorted(changes) == SITES
    assert math.fsum(c[0] for c in changes.values()) == pytest.approx(120.0, abs=1e-6)
    assert all(len(c) == 2 and c[1] == 0.0 for c in changes.values())
    # the fleet state of the first full second: the homes' baselines and the FCR-N they held
    first = next(s for s in states if s["window_s"] == 1)
    assert first["sites_online"] == len(SITES)
    assert first["baseline_mw"] == pytest.approx(0.06)
    (fcrn,) = first["products"]
    assert fcrn["product"] == "FCR_N"
    assert fcrn["armed_mw"] == pytest.approx(0.06)
    assert fcrn["expected_mw"] == pytest.approx(0.0)  # 50 Hz: nothing asked
