"""``contract.kafka.delivery.AckedSender`` on the session's real broker: each record is told
acknowledged once, lands once, in order per partition, on Kafka's default partition of its
key; a record that can never be sent is reported without holding up the others. (A partition
without a leader: tests/integration/test_cluster_fault.py, on the 3-broker cluster.)"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from contract.kafka import clients
from contract.kafka.delivery import AckedSender, DeliveryError, Outgoing, stop_within
from contract.kafka.settings import KafkaSettings
from flowerhub.broker.probe import read_to_end

PARTITIONS = 4
RECORDS = 2000


async def _send(
    kafka: KafkaSettings, topic: str
) -> tuple[list[Outgoing], list[tuple[Outgoing, str]], list[int]]:
    acked: list[Outgoing] = []
    rejected: list[tuple[Outgoing, str]] = []
    producer = clients.producer(kafka, linger_ms=2, max_batch_size=16 * 1024)
    await clients.start(producer, kafka)
    sender = AckedSender(
        producer,
        name="test",
        on_ack=acked.extend,
        on_reject=lambda r, why: rejected.append((r, why)),
    )
    try:
        for i in range(RECORDS // 2):  # submitted one by one, told through on_ack
            sender.submit(Outgoing(topic, b"%d" % i, key=b"site-%03d" % (i % 50), ref=i))
        sender.submit(Outgoing(topic, b"x" * (2 * 1024 * 1024), key=b"big", ref="big"))
        sender.submit(Outgoing(topic, b"nowhere", partition=PARTITIONS + 3, ref="nowhere"))
        group = [
            Outgoing(topic, b"%d" % i, key=b"site-%03d" % (i % 50), ref=i)
            for i in range(RECORDS // 2, RECORDS)
        ]
        metadata = await sender.deliver(group, timeout_s=60)  # a group, awaited
        assert await sender.drain(60)
        assert sender.pending == 0
        left = await sender.close()
    finally:
        await stop_within(producer, 10)
    return acked, rejected, [m.partition for m in metadata] + left  # left must be empty


@pytest.mark.integration
def test_every_record_acknowledged_once_in_order(
    kafka: KafkaSettings, create_topics: Any, unique_name: Any
) -> None:
    (topic,) = create_topics([unique_name("acked")], PARTITIONS)
    acked, rejected, partitions = asyncio.run(_send(kafka, topic))
    tokens = [r.ref for r in acked]
    assert sorted(tokens) == list(range(RECORDS)), "each record acknowledged exactly once"
    assert sorted(why.split(" ")[0] for _, why in rejected) == ["a", topic]
    assert {r.ref for r, _ in rejected} == {"big", "nowhere"}
    assert set(partitions) <= set(range(PARTITIONS))

    records = asyncio.run(read_to_end(kafka, [topic], timeout_s=60))
    values = [int(r.value or b"-1") for r in records]
    assert Counter(values) == Counter(range(RECORDS)), "each record landed exactly once"
    per_key: dict[bytes, list[tuple[int, int]]] = {}
    for r in records:
        assert r.key is not None
        per_key.setdefault(r.key, []).append((r.offset, int(r.value or b"-1")))
    for key, rows in per_key.items():
        assert len({r.partition for r in records if r.key == key}) == 1, "one partition per key"
        ordered = [v for _, v in sorted(rows)]
        assert ordered == sorted(ordered), f"{key!r} out of order"


@pytest.mark.integration
def test_deliver_times_out_naming_what_is_out(kafka: KafkaSettings) -> None:
    async def run() -> DeliveryError:
        producer = clients.producer(kafka, request_timeout_ms=1000)
        await clients.start(producer, kafka)
        sender = AckedSender(producer, name="t", max_backoff_s=0.2)
        try:
            with pytest.raises(DeliveryError) as caught:
                await sender.deliver([Outgoing("no-such-topic-rel15", b"v", key=b"k")], 1.5)
            left = await sender.close()
            assert [r.value for r in left] == [b"v"]
        finally:
            await stop_within(producer, 5)
        return caught.value

    error = asyncio.run(run())
    assert "1 of 1 records not acknowledged within 1.5 s" in str(error)
    assert [r.value for r in error.unacked] == [b"v"]
