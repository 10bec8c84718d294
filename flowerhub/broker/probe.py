"""Small helpers to put records on a topic and read a topic back to its end.

Used by integration tests, fault tests, the demo and the benchmarks, and handy for checking
any topic by hand. Reading "to the end" means up to the end offsets seen when reading
starts, so a call always returns. Every client comes from ``contract.kafka.clients``, so
each helper works over TLS/SASL as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

# aiokafka ships no py.typed (unused-ignore: pyproject may list it later)
from aiokafka import TopicPartition  # type: ignore[import-untyped,unused-ignore]

from contract.kafka import clients
from contract.kafka.admin import require_partitions
from contract.kafka.records import RawRecord, raw_record
from contract.kafka.settings import KafkaSettings

Record = RawRecord  # what read_to_end returns (topic, partition, offset, key, value, ...)


async def produce(
    kafka: KafkaSettings,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    acks: int | str = "all",
) -> int:
    """Send ``(key, value)`` pairs, wait for every acknowledgement; return how many were sent."""
    producer = clients.producer(
        kafka, acks=acks, enable_idempotence=acks in ("all", -1), linger_ms=5
    )
    async with clients.running(producer, kafka):
        futures = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*futures)
    return len(futures)


async def _behind(consumer: Any, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def partitions_of(kafka: KafkaSettings, topics: Sequence[str]) -> dict[str, list[int]]:
    """Partition ids per topic; TopicError naming the topics that do not exist."""
    counts = await require_partitions(kafka, topics)
    return {topic: list(range(count)) for topic, count in counts.items()}


async def read_to_end(
    kafka: KafkaSettings, topics: Sequence[str], *, timeout_s: float = 30.0
) -> list[RawRecord]:
    """Every record of ``topics`` from the beginning to the end offsets at call time.

    No consumer group (manual assignment, nothing committed). Raises TimeoutError when the
    end is not reached within ``timeout_s`` s (e.g. a partition without a leader).
    """
    partitions = [
        TopicPartition(topic, p)
        for topic, ids in (await partitions_of(kafka, topics)).items()
        for p in ids
    ]
    consumer = clients.consumer(kafka, isolation_level="read_committed")
    async with clients.running(consumer, kafka):
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        out: list[RawRecord] = []
        deadline = time.monotonic() + timeout_s
        while await _behind(consumer, ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {list(topics)} did not reach the end in {timeout_s} s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batch.items():
                out += [raw_record(m) for m in messages if m.offset < ends[tp]]
        return out


async def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """The end offset (next offset to be written) of every partition of ``topic``."""
    partitions = [TopicPartition(topic, p) for p in (await partitions_of(kafka, [topic]))[topic]]
    consumer = clients.consumer(kafka)
    async with clients.running(consumer, kafka):
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    return {tp.partition: end for tp, end in ends.items()}


async def group_lag(kafka: KafkaSettings, group_id: str, topic: str) -> int:
    """Records of ``topic`` the consumer group has not committed yet (0 = all committed)."""
    ends = await end_offsets(kafka, topic)
    admin = clients.admin(kafka)
    async with clients.running(admin, kafka):
        committed = await admin.list_consumer_group_offsets(group_id)
    done = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic}
    return sum(end - max(done.get(p, 0), 0) for p, end in ends.items())
