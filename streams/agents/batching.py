"""Keyed batch production: many ``(key, value)`` records to one topic, acknowledged per record.

``AIOKafkaProducer.send`` costs tens of microseconds of Python per record (serialise,
partition with the pure-Python murmur2, accumulator bookkeeping, one future each). For a
burst such as one fleet setpoint fanned out to 10,000 sites, :class:`KeyedBatchSender`
hands the records to the project's per-record acknowledged sender
(:class:`contract.kafka.delivery.AckedSender`), which fills aiokafka's own batch builders
(``create_batch`` / ``send_batch``) one lane per partition: a partition without a leader
holds up only its own records, and a failed batch resends only its own records through the
same idempotent producer.

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

from contract.kafka.delivery import AckedSender, Outgoing


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (Java/aiokafka murmur2)."""
    # aiokafka ships no type information
    from aiokafka.partitioner import murmur2  # type: ignore[import-untyped, unused-ignore]

    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


class KeyedBatchSender:
    """Sends keyed records to ``topic`` through ``producer`` (a started ``AIOKafkaProducer``)
    or through a shared ``sender``; ``partitions`` is the topic's partition count."""

    def __init__(
        self, producer: Any, topic: str, partitions: int, sender: AckedSender | None = None
    ) -> None:
        if partitions <= 0:
            raise ValueError(f"partitions must be > 0, got {partitions}")
        self.producer = producer
        self.topic = topic
        self.partitions = list(range(partitions))
        self._sender = sender
        self._owns_sender = sender is None
        self._partition_of: dict[bytes, int] = {}
        self._partitioner = DefaultPartitioner()

    @property
    def sender(self) -> AckedSender:
        if self._sender is None:  # made in the running loop, on first use
            self._sender = AckedSender(self.producer, name=f"batches:{self.topic}")
        return self._sender

    async def close(self, drain_s: float = 0.0) -> list[Outgoing]:
        """Stop the sender this batcher made (a shared ``sender`` is its owner's to close):
        waits up to ``drain_s`` for acknowledgements and returns the records still out."""
        if self._sender is None or self._owns_sender is False:
            return []
        sender, self._sender = self._sender, None
        return await sender.close(drain_s)

    def partition(self, key: bytes) -> int:
        """The partition Kafka's default partitioner gives ``key`` (cached)."""
        known = self._partition_of.get(key)
        if known is None:
            known = self._partitioner(key, self.partitions, self.partitions)
            self._partition_of[key] = known
        return known

    async def send_all(self, records: Iterable[tuple[bytes, bytes]]) -> asyncio.Future[list[Any]]:
        """Queue every ``(key, value)``; a future of the ``RecordMetadata`` of the batches
        that carried them, done once every record was acknowledged. Records of one key keep
        their order (one partition, one lane)."""
        partition = self.partition
        return await self.send_partitioned((partition(k), k, v) for k, v in records)

    async def send_partitioned(
        self, records: Iterable[tuple[int, bytes, bytes]]
    ) -> asyncio.Future[list[Any]]:
        """Queue every ``(partition, key, value)`` to the partition given (e.g. a table's
        changelog, which goes to the partition of the source event, not of its own key);
        a future of the batches' ``RecordMetadata`` (each names its partition and the offset
        of its first record), done once every record was acknowledged. Records of one
        partition keep their order."""
        count = len(self.partitions)
        topic = self.topic
        out: list[Outgoing] = []
        for part, key, value in records:
            if not 0 <= part < count:
                raise ValueError(f"partition {part} not in 0..{count - 1} of {topic}")
            out.append(Outgoing(topic, value, key, part))
        return asyncio.ensure_future(self.sender.deliver(out))
