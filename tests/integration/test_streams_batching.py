"""``KeyedBatchSender`` on the real broker: every record lands, on the partition Kafka's
default partitioner gives its key, in order per key; a batch that fills up is split."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

# aiokafka ships no type information
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, unused-ignore]

from flowerhub.broker.probe import Record, read_to_end
from streams.agents.batching import KeyedBatchSender
from streams.agents.setpoint_filter import murmur2_partition

PARTITIONS = 6


async def _send(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], max_batch_size: int
) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_batch_size=max_batch_size
    )
    await producer.start()
    try:
        futures = await KeyedBatchSender(producer, topic, PARTITIONS).send_all(records)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


@pytest.mark.integration
@pytest.mark.parametrize(("max_batch_size", "min_batches"), [(1024 * 1024, 1), (2048, 20)])
def test_records_land_keyed_and_in_order(
    kafka_bootstrap: str,
    create_topics: Callable[..., list[str]],
    unique_name: Callable[[str], str],
    max_batch_size: int,
    min_batches: int,
) -> None:
    (topic,) = create_topics([unique_name("batched")], PARTITIONS)
    keys = [f"site-{i:03d}".encode() for i in range(40)]
    pad = b"." * 300  # ~60 kB in all: many 2 kB batches per partition
    records = [(key, f"{key.decode()}:{n}".encode() + pad) for n in range(5) for key in keys]
    batches = asyncio.run(_send(kafka_bootstrap, topic, records, max_batch_size))
    assert batches >= min_batches
    landed: list[Record] = asyncio.run(read_to_end(kafka_bootstrap, [topic]))
    assert sorted((r.key, r.value) for r in landed) == sorted(records)
    for r in landed:
        assert r.key is not None
        assert r.partition == murmur2_partition(r.key, PARTITIONS)
    for key in keys:
        values = [r.value for r in sorted(landed, key=lambda r: r.offset) if r.key == key]
        assert values == [f"{key.decode()}:{n}".encode() + pad for n in range(5)]


def test_a_topic_needs_partitions() -> None:
    with pytest.raises(ValueError, match="partitions"):
        KeyedBatchSender(None, "t", 0)
