"""``KeyedBatchSender`` on the real broker: every record lands, on the partition Kafka's
default partitioner gives its key, in order per key; a batch that fills up is split."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

# aiokafka ships no type information
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from flowerhub.broker.probe import Record, read_to_end
from streams.agents.batching import KeyedBatchSender, murmur2_partition

PARTITIONS = 6


async def _send(
    kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]], max_batch_size: int
) -> int:
    producer = clients.producer(kafka, acks="all", max_batch_size=max_batch_size)
    await clients.start(producer, kafka)
    sender = KeyedBatchSender(producer, topic, PARTITIONS)
    try:
        metadata = await (await sender.send_all(records))
    finally:
        assert await sender.close() == []
        await producer.stop()
    return len(metadata)


@pytest.mark.integration
@pytest.mark.parametrize(("max_batch_size", "min_batches"), [(1024 * 1024, 1), (2048, 20)])
def test_records_land_keyed_and_in_order(
    kafka: KafkaSettings,
    create_topics: Callable[..., list[str]],
    unique_name: Callable[[str], str],
    max_batch_size: int,
    min_batches: int,
) -> None:
    (topic,) = create_topics([unique_name("batched")], PARTITIONS)
    keys = [f"site-{i:03d}".encode() for i in range(40)]
    pad = b"." * 300  # ~60 kB in all: many 2 kB batches per partition
    records = [(key, f"{key.decode()}:{n}".encode() + pad) for n in range(5) for key in keys]
    batches = asyncio.run(_send(kafka, topic, records, max_batch_size))
    assert batches >= min_batches
    landed: list[Record] = asyncio.run(read_to_end(kafka, [topic]))
    assert sorted((r.key, r.value) for r in landed) == sorted(records)
    for r in landed:
        assert r.key is not None
        assert r.partition == murmur2_partition(r.key, PARTITIONS)
    for key in keys:
        values = [r.value for r in sorted(landed, key=lambda r: r.offset) if r.key == key]
        assert values == [f"{key.decode()}:{n}".encode() + pad for n in range(5)]


async def _send_partitioned(
    kafka: KafkaSettings, topic: str, records: list[tuple[int, bytes, bytes]]
) -> list[Any]:
    producer = clients.producer(kafka, acks="all", max_batch_size=2048)
    await clients.start(producer, kafka)
    sender = KeyedBatchSender(producer, topic, PARTITIONS)
    try:
        return list(await (await sender.send_partitioned(records)))
    finally:
        assert await sender.close() == []
        await producer.stop()


@pytest.mark.integration
def test_partitioned_records_land_on_the_partition_given_in_order(
    kafka: KafkaSettings,
    create_topics: Callable[..., list[str]],
    unique_name: Callable[[str], str],
) -> None:
    (topic,) = create_topics([unique_name("partitioned")], PARTITIONS)
    # the partition is not the key's (a changelog goes to its source event's partition)
    records = [
        ((n * 7 + i) % PARTITIONS, f"k{i}".encode(), f"{i}:{n}".encode() + b"." * 200)
        for n in range(6)
        for i in range(30)
    ]
    metadata = asyncio.run(_send_partitioned(kafka, topic, records))
    landed: list[Record] = asyncio.run(read_to_end(kafka, [topic]))
    assert sorted((r.partition, r.key, r.value) for r in landed) == sorted(records)
    for part in range(PARTITIONS):
        expected = [v for p, _, v in records if p == part]
        got = [r.value for r in sorted(landed, key=lambda r: r.offset) if r.partition == part]
        assert got == expected
    # each batch's acknowledgement names its partition and the offset of its first record
    firsts = {(r.partition, r.offset) for r in landed}
    assert {(m.partition, m.offset) for m in metadata} <= firsts
    assert {m.partition for m in metadata} == set(range(PARTITIONS))


@pytest.mark.parametrize("bad", [3, -1])
def test_a_partition_outside_the_topic_is_refused(bad: int) -> None:
    sender = KeyedBatchSender(None, "t", 3)  # refused before the producer is used
    with pytest.raises(ValueError, match=f"partition {bad} not in 0..2 of t"):
        asyncio.run(sender.send_partitioned([(bad, b"k", b"v")]))


def test_a_topic_needs_partitions() -> None:
    with pytest.raises(ValueError, match="partitions"):
        KeyedBatchSender(None, "t", 0)
