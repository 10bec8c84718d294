"""Archiver on a real broker: stop, kill mid-batch, restart; every offset archived exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiokafka  # type: ignore[import-untyped, unused-ignore]  # ships no py.typed
import duckdb
import pytest

from analytics.archive.archiver import Archiver, ArchiverConfig, ArchiverStats
from analytics.archive.layout import TopicPartition, iter_parts, recover_positions
from analytics.archive.rows import RawRecord
from analytics.testing.synthetic import SyntheticLog, synthetic_records
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def _produce(kafka: KafkaSettings, topic: str, records: Sequence[RawRecord]) -> None:
    producer = clients.producer(kafka, enable_idempotence=True, linger_ms=5)
    await clients.start(producer, kafka)
    try:
        futures = [
            await producer.send(
                topic,
                value=r.value,
                key=r.key,
                partition=r.partition,
                timestamp_ms=r.timestamp_ms,
            )
            for r in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _archived(root: Path) -> list[tuple[int, int, bytes | None, bytes | None]]:
    pattern = str(root / "topic=*" / "hour=*" / "part-*.parquet")
    with duckdb.connect() as con:
        rows: list[Any] = con.execute(
            'SELECT "partition", "offset", key, value '
            'FROM read_parquet(?, hive_partitioning = false) ORDER BY "partition", "offset"',
            [pattern],
        ).fetchall()
    return [tuple(r) for r in rows]


def _expected(records: Sequence[RawRecord]) -> list[tuple[int, int, bytes | None, bytes | None]]:
    return sorted((r.partition, r.offset, r.key, r.value) for r in records)


async def _committed(
    kafka: KafkaSettings, group: str, topic: str, partitions: int
) -> dict[int, int]:
    consumer = clients.consumer(kafka, group_id=group)
    await clients.start(consumer, kafka)
    try:
        return {
            p: await consumer.committed(aiokafka.TopicPartition(topic, p))
            for p in range(partitions)
        }
    finally:
        await consumer.stop()


def _run(config: ArchiverConfig, until_archived: int, timeout: float = 60.0) -> ArchiverStats:
    async def go() -> ArchiverStats:
        return await asyncio.wait_for(
            Archiver(config).run(until=lambda s: s.archived >= until_archived), timeout
        )

    return asyncio.run(go())


def test_restart_resumes_with_no_gap_and_no_duplicate(
    kafka: KafkaSettings, create_topics: Any, unique_name: Any, tmp_path: Path
) -> None:
    (topic,) = create_topics([unique_name("telemetry")], partitions=3)
    log = list(synthetic_records(SyntheticLog(sites=10, samples=90, partitions=3, topic=topic)))
    first, more = log[:600], log[600:]
    asyncio.run(_produce(kafka, topic, first))
    config = ArchiverConfig(
        out=tmp_path / "archive",
        kafka=kafka,
        topics=(topic,),
        group_id=unique_name("group"),
        flush_records=50,
        flush_interval_s=0.05,
        poll_records=50,
    )
    stopped = _run(config, until_archived=250)
    assert 250 <= stopped.archived < 600  # stopped part-way: M < N
    assert len(_archived(config.out)) == stopped.archived

    positions = recover_positions(config.out)
    asyncio.run(_produce(kafka, topic, more))
    resumed = _run(config, until_archived=len(log) - stopped.archived)
    assert resumed.resumed_from == {
        TopicPartition(topic, p): positions.get(TopicPartition(topic, p), 0) for p in range(3)
    }
    assert stopped.archived + resumed.archived == len(log)
    assert _archived(config.out) == _expected(log)  # every offset exactly once, bytes intact
    committed = asyncio.run(_committed(kafka, config.group_id, topic, 3))
    assert committed == {tp.partition: n for tp, n in recover_positions(config.out).items()}


def test_kill_mid_batch_then_restart_loses_and_repeats_nothing(
    kafka: KafkaSettings, create_topics: Any, unique_name: Any, tmp_path: Path
) -> None:
    (topic,) = create_topics([unique_name("telemetry")], partitions=3)
    log = list(synthetic_records(SyntheticLog(sites=20, samples=150, partitions=3, topic=topic)))
    first, more = log[:2400], log[2400:]
    asyncio.run(_produce(kafka, topic, first))
    out = tmp_path / "archive"
    command = [
        sys.executable, "-m", "flowerhub.cli", "archive", "--out", str(out),
        "--bootstrap", kafka.bootstrap_servers, "--topics", topic, "--group", unique_name("group"),
        "--flush-records", "20", "--flush-interval", "0.01", "--poll-records", "20",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while sum(1 for _ in iter_parts(out)) < 15:  # killed while it keeps flushing
            assert process.poll() is None, "archiver exited early"
            assert time.monotonic() < deadline, "archiver wrote nothing"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    archived_before = len(_archived(out))
    assert 0 < archived_before < len(first)

    asyncio.run(_produce(kafka, topic, more))
    config = ArchiverConfig(
        out=out,
        kafka=kafka,
        topics=(topic,),
        group_id=unique_name("group2"),
        flush_records=500,
        flush_interval_s=0.1,
    )
    resumed = _run(config, until_archived=len(log) - archived_before)
    assert resumed.archived == len(log) - archived_before
    assert not list(out.glob("topic=*/hour=*/.*.tmp"))
    assert _archived(out) == _expected(log)
