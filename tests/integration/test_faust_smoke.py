"""Faust 0.15 + aiokafka 0.14 on the real broker: a consumer group, a table with a changelog,
and table recovery from that changelog after a worker restart.

The worker runs as a subprocess (tests/integration/faust_smoke_app.py, started by the
shared harness streams/worker_process.py): Faust owns its event loop and signal
handling, which do not mix well with pytest's process. Topic names are spelled out here on
purpose: they are Faust's naming convention, which the project must follow when it
pre-creates topics.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contract.kafka.settings import KafkaSettings
from flowerhub.broker.probe import Record, group_lag, produce, read_to_end
from streams.worker_process import Worker, run_worker

APP = Path(__file__).with_name("faust_smoke_app.py")
PARTITIONS = 2  # faust_smoke_app.PARTITIONS


@contextmanager
def faust_worker(kafka: KafkaSettings, app_id: str, workdir: Path) -> Iterator[Worker]:
    """Run the smoke app's worker until it touches its ready file (``streams.worker_process``)."""

    def ready(worker: Worker) -> bool:
        return (workdir / f"ready-{worker.proc.pid}").exists()

    command = [sys.executable, str(APP), kafka.bootstrap_servers, app_id, str(workdir)]
    with run_worker(command, workdir, ready) as worker:
        yield worker


def latest_by_key(records: list[Record], decode: Callable[[bytes], int]) -> dict[str, int]:
    """The last value per key (one key lives in one partition, read in offset order)."""
    out: dict[str, int] = {}
    for r in records:
        assert r.key is not None
        assert r.value is not None
        out[r.key.decode()] = decode(r.value)
    return out


async def wait_until_committed(
    kafka: KafkaSettings, group: str, topic: str, worker: Worker
) -> None:
    """Wait for the worker to commit every event, so a restart does not process any twice
    (Faust is at-least-once: uncommitted events are processed again after a restart)."""
    deadline = time.monotonic() + 30
    lag = -1
    while time.monotonic() < deadline:
        worker.check_alive()
        lag = await group_lag(kafka, group, topic)
        if lag == 0:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"group {group} still lags {lag} records on {topic}\n{worker.tail()}")


def history(records: list[Record]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in records:
        out.setdefault(repr(r.key), []).append(repr(r.value))
    return out


async def wait_for_totals(
    kafka: KafkaSettings, topic: str, expected: dict[str, int], worker: Worker
) -> None:
    deadline = time.monotonic() + 60
    seen: dict[str, int] = {}
    records: list[Record] = []
    while time.monotonic() < deadline:
        worker.check_alive()
        records = await read_to_end(kafka, [topic])
        seen = latest_by_key(records, int)
        if seen == expected:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"totals {seen} never became {expected}; history {history(records)}\n{worker.tail()}"
    )


def batch(sites: int, first_seq: int, amount_of: Callable[[int], int]) -> list[tuple[bytes, bytes]]:
    """Three events per site ``site-<i>``: ``b"<seq>:<amount>"``, seq from ``first_seq`` on."""
    return [
        (f"site-{i}".encode(), f"{first_seq + n}:{amount_of(i)}".encode())
        for i in range(sites)
        for n in range(3)
    ]


def sums(events: list[tuple[bytes, bytes]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in events:
        out[key.decode()] = out.get(key.decode(), 0) + int(value.split(b":")[1])
    return out


@pytest.mark.integration
def test_faust_table_with_changelog_survives_a_worker_restart(
    kafka: KafkaSettings,
    create_topics: Callable[..., list[str]],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    app_id = unique_name("app")
    events_topic, totals_topic = f"{app_id}-events", f"{app_id}-totals"
    changelog = f"{app_id}-totals-changelog"
    create_topics([events_topic, totals_topic], PARTITIONS)
    create_topics([changelog], PARTITIONS, configs={"cleanup.policy": "compact"})
    create_topics([f"{app_id}-__assignor-__leader"], 1)

    first = batch(6, 1, lambda i: i + 1)
    with faust_worker(kafka, app_id, tmp_path) as worker:
        asyncio.run(produce(kafka, events_topic, first))
        asyncio.run(wait_for_totals(kafka, totals_topic, sums(first), worker))
        asyncio.run(wait_until_committed(kafka, app_id, events_topic, worker))

    # The table's changelog holds [last seq, total] of every key (Faust's json encoding).
    changelog_records = asyncio.run(read_to_end(kafka, [changelog]))
    stored = latest_by_key(changelog_records, lambda raw: int(json.loads(raw)[1]))
    assert {json.loads(k): v for k, v in stored.items()} == sums(first)

    # A new worker (memory store: empty at start) rebuilds the table from the changelog,
    # so new amounts add to the old totals instead of starting from zero.
    second = batch(6, 4, lambda i: 10 * (i + 1))
    with faust_worker(kafka, app_id, tmp_path) as worker:
        asyncio.run(produce(kafka, events_topic, second))
        asyncio.run(wait_for_totals(kafka, totals_topic, sums(first + second), worker))
