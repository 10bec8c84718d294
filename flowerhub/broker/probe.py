"""Small aiokafka helpers to put records on a topic and read a topic back to its end.

Used by integration tests, fault tests and the benchmark, and handy for checking any topic
by hand. Reading "to the end" means up to the end offsets seen when reading starts, so a
call always returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# aiokafka has no py.typed (unused-ignore: pyproject may list it later)
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    acks: int | str = "all",
) -> int:
    """Send ``(key, value)`` pairs, wait for every acknowledgement; return how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=acks, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def partitions_of(bootstrap: str, topics: Sequence[str]) -> dict[str, list[int]]:
    """Partition ids per topic; ValueError naming the topics that do not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    found = {
        t["topic"]: sorted(p["partition"] for p in t["partitions"])
        for t in described
        if t["error_code"] == 0 and t["partitions"]
    }
    missing = [t for t in topics if t not in found]
    if missing:
        raise ValueError(f"topics {missing} do not exist on {bootstrap}")
    return found


async def read_to_end(
    bootstrap: str, topics: Sequence[str], *, timeout_s: float = 30.0
) -> list[Record]:
    """Every record of ``topics`` from the beginning to the end offsets at call time.

    No consumer group (manual assignment, nothing committed). Raises TimeoutError when the
    end is not reached within ``timeout_s`` s (e.g. a partition without a leader).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic, ids in (await partitions_of(bootstrap, topics)).items()
            for p in ids
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while await _behind(consumer, ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {list(topics)} did not reach the end in {timeout_s} s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batch.items():
                out += [
                    Record(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp)
                    for m in messages
                    if m.offset < ends[tp]
                ]
        return out
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset (next offset to be written) of every partition of ``topic``."""
    partitions = [
        TopicPartition(topic, p) for p in (await partitions_of(bootstrap, [topic]))[topic]
    ]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: end for tp, end in ends.items()}


async def group_lag(bootstrap: str, group_id: str, topic: str) -> int:
    """Records of ``topic`` the consumer group has not committed yet (0 = all committed)."""
    ends = await end_offsets(bootstrap, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        committed = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    done = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic}
    return sum(end - max(done.get(p, 0), 0) for p, end in ends.items())
