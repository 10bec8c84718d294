"""Kafka baseline: aiokafka throughput and end-to-end latency on the project's local broker.

Figures (~200-byte payloads, one process, one event loop):

- ``kafka_e2e_throughput``: events/s from the first send until a consumer in the same
  process received all of them. Baseline: produce-only throughput (every send acked) in the
  same run, so the ratio is the cost of consuming what was produced on the same event loop.
  Both are measured after a warm-up, alternating, best of ``ROUNDS`` each.
- ``kafka_e2e_latency_p50`` / ``_p99``: send -> receive time of events sent at a steady
  1,000 events/s (acks=all, linger 0). Baseline: the same payload echoed over a raw asyncio
  TCP loopback connection, the floor any broker round trip on this machine and event loop
  pays. The ratio is what Kafka (log append, fetch long-poll, two client stacks) adds.

Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set, else starts a single-node local broker in a temp
dir (its startup time and RSS go into the notes). Later stages compare against these figures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# aiokafka has no py.typed (unused-ignore: pyproject may list it later)
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]

from bench import BenchResult
from contract.kafka import clients
from contract.kafka.admin import create_named_topics_sync as create_topics
from contract.kafka.settings import KafkaSettings, settings_for

PAYLOAD = 200
THROUGHPUT_EVENTS = 40_000
LATENCY_EVENTS = 2_000
LATENCY_RATE = 1_000.0  # events/s
PARTITIONS = 3
ROUNDS = 2


@contextmanager
def broker() -> Iterator[tuple[KafkaSettings, str]]:
    """(kafka, note): the preset cluster, or a fresh local single-node broker."""
    preset = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if preset:
        yield settings_for(preset), f"KAFKA_BOOTSTRAP_SERVERS={preset}"
        return
    from flowerhub.broker.launcher import cluster_status, local_cluster

    with (
        tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp,
        local_cluster(1, Path(tmp)) as state,
    ):
        status = cluster_status(Path(state.data_dir))
        rss = status.rss_bytes // 2**20 if status else 0
        yield (
            settings_for(state.bootstrap),
            (
                f"local Kafka {state.kafka_version}, 1 node, started in "
                f"{state.startup_seconds:.1f} s, java RSS {rss} MiB"
            ),
        )


def payload(i: int) -> bytes:
    head = f"{i:012d}".encode()
    return head + b"x" * (PAYLOAD - len(head))


async def produce_only(kafka: KafkaSettings, topic: str, n: int) -> float:
    """Events/s for sending ``n`` events and receiving every ack (acks=all, linger 5 ms)."""
    producer = clients.producer(kafka, enable_idempotence=False, linger_ms=5)
    await clients.start(producer, kafka)
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, payload(i)) for i in range(n)]
        await asyncio.gather(*futures)
        return n / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def _consumer(kafka: KafkaSettings, topic: str) -> AIOKafkaConsumer:
    consumer = clients.consumer(
        kafka,
        topic,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await clients.start(consumer, kafka)
    while not consumer.assignment():  # joined, partitions assigned, positions at the end
        await consumer.getmany(timeout_ms=100)
    for tp in consumer.assignment():
        await consumer.position(tp)
    return consumer


async def produce_and_consume(kafka: KafkaSettings, topic: str, n: int) -> float:
    """Events/s from the first send until the consumer has received all ``n`` events."""
    consumer = await _consumer(kafka, topic)
    producer = clients.producer(kafka, enable_idempotence=False, linger_ms=5)
    await clients.start(producer, kafka)
    try:
        received = 0

        async def consume() -> None:
            nonlocal received
            while received < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                received += sum(len(messages) for messages in batch.values())

        started = time.perf_counter()
        reader = asyncio.create_task(consume())
        futures = [await producer.send(topic, payload(i)) for i in range(n)]
        await asyncio.gather(*futures)
        await asyncio.wait_for(reader, 120)
        return n / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


async def kafka_latencies(kafka: KafkaSettings, topic: str) -> list[float]:
    """Seconds from send to receipt for LATENCY_EVENTS events at LATENCY_RATE events/s."""
    consumer = await _consumer(kafka, topic)
    producer = clients.producer(kafka, enable_idempotence=False, linger_ms=0)
    await clients.start(producer, kafka)
    sent: dict[int, float] = {}
    latencies: list[float] = []
    try:

        async def consume() -> None:
            while len(latencies) < LATENCY_EVENTS:
                batch = await consumer.getmany(timeout_ms=200)
                now = time.perf_counter()
                for messages in batch.values():
                    latencies.extend(now - sent[int(m.value[:12])] for m in messages)

        reader = asyncio.create_task(consume())
        start = time.perf_counter()
        for i in range(LATENCY_EVENTS):
            delay = start + i / LATENCY_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[i] = time.perf_counter()
            await producer.send(topic, payload(i))
        await asyncio.wait_for(reader, 60)
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies


async def tcp_echo_latencies() -> list[float]:
    """Seconds per round trip of the same payload, same pacing, over a loopback TCP echo."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = []
    try:
        start = time.perf_counter()
        for i in range(LATENCY_EVENTS):
            delay = start + i / LATENCY_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.perf_counter()
            writer.write(payload(i))
            await writer.drain()
            await reader.readexactly(PAYLOAD)
            latencies.append(time.perf_counter() - sent)
    finally:
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    return latencies


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by the 'inclusive' method; values must not be empty."""
    if not values:
        raise ValueError("no values to take a percentile of")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


def run() -> list[BenchResult]:
    with broker() as (kafka, where):
        run_id = uuid.uuid4().hex[:8]
        names = ("warmup", "produce", "e2e", "latency")
        topics = dict(zip(names, (f"bench-{n}-{run_id}" for n in names), strict=True))
        create_topics(kafka, list(topics.values()), PARTITIONS)
        # A fresh JVM is still compiling: warm it up, then alternate the two throughput
        # runs and keep the best of each, so neither side is measured on a colder broker.
        asyncio.run(produce_and_consume(kafka, topics["warmup"], THROUGHPUT_EVENTS // 2))
        produce_rates, e2e_rates = [], []
        for _ in range(ROUNDS):
            produce_rates.append(
                asyncio.run(produce_only(kafka, topics["produce"], THROUGHPUT_EVENTS))
            )
            e2e_rates.append(
                asyncio.run(produce_and_consume(kafka, topics["e2e"], THROUGHPUT_EVENTS))
            )
        produce_rate, e2e_rate = max(produce_rates), max(e2e_rates)
        kafka_lat = asyncio.run(kafka_latencies(kafka, topics["latency"]))
    echo_lat = asyncio.run(tcp_echo_latencies())
    ms = 1000.0
    results = [
        BenchResult(
            name="kafka_e2e_throughput",
            value=e2e_rate,
            unit="events/s",
            baseline=produce_rate,
            goal=">= 13,000 events/s (10x the fleet's 1,300 sites at 1 Hz)",
            note=(
                f"{THROUGHPUT_EVENTS} x {PAYLOAD} B, {PARTITIONS} partitions, acks=all, best of "
                f"{ROUNDS} alternating rounds after a warm-up; baseline = produce-only (all "
                f"acked) on the same broker; {where}"
            ),
        )
    ]
    for q in (0.5, 0.99):
        label = f"p{round(q * 100)}"
        results.append(
            BenchResult(
                name=f"kafka_e2e_latency_{label}",
                value=percentile(kafka_lat, q) * ms,
                unit="ms",
                baseline=percentile(echo_lat, q) * ms,
                goal="p99 <= 50 ms on the local broker (well inside FCR-D's seconds)"
                if q > 0.5
                else "p50 <= 10 ms",
                higher_is_better=False,
                note=(
                    f"send->receive, {LATENCY_EVENTS} events at {LATENCY_RATE:.0f}/s, acks=all, "
                    f"linger 0; baseline = asyncio TCP loopback echo {label}, same pacing"
                ),
            )
        )
    return results
