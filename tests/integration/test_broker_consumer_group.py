"""Plain aiokafka on the real broker: bytes in, bytes out, through a consumer group."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

# aiokafka has no py.typed (unused-ignore: pyproject may list it later)
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]

from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from flowerhub.broker.probe import group_lag, produce

PARTITIONS = 4
EVENTS = 400


async def drain(
    consumers: list[AIOKafkaConsumer], want: int, within: float = 30.0
) -> list[list[bytes]]:
    """Poll every consumer until ``want`` values arrived in total; values per consumer."""
    got: list[list[bytes]] = [[] for _ in consumers]
    deadline = time.monotonic() + within
    while sum(map(len, got)) < want:
        assert time.monotonic() < deadline, f"only {sum(map(len, got))} of {want} consumed"
        batches = await asyncio.gather(*(c.getmany(timeout_ms=200) for c in consumers))
        for mine, batch in zip(got, batches, strict=True):
            mine += [m.value for messages in batch.values() for m in messages if m.value]
    return got


async def group_round_trip(kafka: KafkaSettings, topic: str, group: str) -> list[list[bytes]]:
    def member() -> AIOKafkaConsumer:
        return clients.consumer(
            kafka,
            topic,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    consumers = [member(), member()]
    await asyncio.gather(*(c.start() for c in consumers))
    try:
        # Both members must hold partitions before producing, so the split is observable.
        deadline = time.monotonic() + 30
        while not all(c.assignment() for c in consumers):
            assert time.monotonic() < deadline, "the group never assigned both members"
            await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))
        assigned = [c.assignment() for c in consumers]
        assert not set.intersection(*map(set, assigned)), f"overlapping assignment {assigned}"
        assert sum(map(len, assigned)) == PARTITIONS

        values = [f"event-{i:04d}".encode() for i in range(EVENTS)]
        await produce(kafka, topic, ((str(i).encode(), v) for i, v in enumerate(values)))
        got = await drain(consumers, EVENTS)
        await asyncio.gather(*(c.commit() for c in consumers))
    finally:
        await asyncio.gather(*(c.stop() for c in consumers))
    assert await group_lag(kafka, group, topic) == 0
    return got


@pytest.mark.integration
def test_two_members_of_a_group_split_the_partitions_and_get_every_event_once(
    kafka: KafkaSettings,
    create_topics: Callable[..., list[str]],
    unique_name: Callable[[str], str],
) -> None:
    (topic,) = create_topics([unique_name("events")], PARTITIONS)
    got = asyncio.run(group_round_trip(kafka, topic, unique_name("group")))
    everything = sorted(got[0] + got[1])
    assert everything == [f"event-{i:04d}".encode() for i in range(EVENTS)]
    assert all(got), "each member should have consumed its own partitions"


@pytest.mark.integration
def test_producing_to_a_missing_topic_fails_since_auto_creation_is_off(
    kafka: KafkaSettings, unique_name: Callable[[str], str]
) -> None:
    from aiokafka.errors import UnknownTopicOrPartitionError  # type: ignore[import-untyped,unused-ignore]

    async def send_to_missing() -> None:
        producer = clients.producer(kafka, request_timeout_ms=2000)
        await clients.start(producer, kafka)
        try:
            await producer.send_and_wait(unique_name("never-created"), b"x")
        finally:
            await producer.stop()

    with pytest.raises(UnknownTopicOrPartitionError):
        asyncio.run(send_to_missing())
