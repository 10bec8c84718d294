"""Keyed batch production: many ``(key, value)`` records to one topic, one batch per partition.

``AIOKafkaProducer.send`` costs tens of microseconds of Python per record (serialise,
partition with the pure-Python murmur2, accumulator bookkeeping, one future each). For a
burst such as one fleet setpoint fanned out to 10,000 sites, :class:`KeyedBatchSender`
fills aiokafka's own batch builders instead (``create_batch`` / ``send_batch``, public
aiokafka API) and returns one future per batch.

The partition of a key is exactly the one aiokafka's ``DefaultPartitioner`` (Kafka's
murmur2 partitioner) picks, so per-key ordering is the same as for records sent one by one
by any other producer of the topic (Faust included); it is computed once per key and kept
(site ids are a stable set).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

# aiokafka ships no type information
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped, unused-ignore]


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (Java/aiokafka murmur2)."""
    # aiokafka ships no type information
    from aiokafka.partitioner import murmur2  # type: ignore[import-untyped, unused-ignore]

    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


class KeyedBatchSender:
    """Sends keyed records to ``topic`` through ``producer`` (a started ``AIOKafkaProducer``)
    in per-partition batches. ``partitions`` is the topic's partition count."""

    def __init__(self, producer: Any, topic: str, partitions: int) -> None:
        if partitions <= 0:
            raise ValueError(f"partitions must be > 0, got {partitions}")
        self.producer = producer
        self.topic = topic
        self.partitions = list(range(partitions))
        self._partition_of: dict[bytes, int] = {}
        self._partitioner = DefaultPartitioner()

    def partition(self, key: bytes) -> int:
        """The partition Kafka's default partitioner gives ``key`` (cached)."""
        known = self._partition_of.get(key)
        if known is None:
            known = self._partitioner(key, self.partitions, self.partitions)
            self._partition_of[key] = known
        return known

    async def send_all(self, records: Iterable[tuple[bytes, bytes]]) -> list[asyncio.Future[Any]]:
        """Queue every ``(key, value)``; the futures of the batches (await them for the acks).

        Records of one key keep their order (one partition, appended in order). A batch that
        fills up is submitted and a new one started for that partition.
        """
        partition_of = self._partition_of
        partition = self.partition

        def placed() -> Iterable[tuple[int, bytes, bytes]]:
            for key, value in records:
                part = partition_of.get(key)
                yield (partition(key) if part is None else part), key, value

        return await self.send_partitioned(placed())

    async def send_partitioned(
        self, records: Iterable[tuple[int, bytes, bytes]]
    ) -> list[asyncio.Future[Any]]:
        """Queue every ``(partition, key, value)`` to the partition given (e.g. a table's
        changelog, which goes to the partition of the source event, not of its own key);
        the futures of the batches, each resolving to the ``RecordMetadata`` of its first
        record. Records of one partition keep their order."""
        producer = self.producer
        count = len(self.partitions)
        builders: dict[int, Any] = {}
        futures: list[asyncio.Future[Any]] = []
        for part, key, value in records:
            builder = builders.get(part)
            if builder is None:
                if not 0 <= part < count:
                    raise ValueError(f"partition {part} not in 0..{count - 1} of {self.topic}")
                builder = builders[part] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                futures.append(await self._submit(builder, part))
                builder = builders[part] = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(
                        f"a record of {len(key) + len(value)} bytes does not fit in an empty batch"
                    )
        for part, builder in builders.items():
            futures.append(await self._submit(builder, part))
        return futures

    async def _submit(self, builder: Any, part: int) -> asyncio.Future[Any]:
        builder.close()
        future: asyncio.Future[Any] = await self.producer.send_batch(
            builder, self.topic, partition=part
        )
        return future
