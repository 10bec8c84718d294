"""Every event type through a real broker: create the topic table (idempotently), produce one
event of each type to its topic with aiokafka, consume them back, decode and compare."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import Any

import pytest
from aiokafka import (  # type: ignore[import-untyped, unused-ignore]  # no py.typed
    TopicPartition,
)

from contract import Codec, SchemaRegistry
from contract.kafka import clients
from contract.kafka.admin import create_topics
from contract.kafka.settings import KafkaSettings
from contract.topics import TOPICS, topic_for_event

REGISTRY = SchemaRegistry.load()
CODEC = Codec(REGISTRY, strict=True)
T0 = dt.datetime(2026, 11, 24, 1, 0, tzinfo=dt.UTC)
PRIMITIVE_EXAMPLES: dict[str, Any] = {
    "string": "x",
    "double": -2.5,
    "float": 0.5,
    "int": 3,
    "long": 2**40,
    "boolean": True,
    "bytes": b"\x00\xff",
}


def example(schema: Any, named: dict[str, Any], path: str) -> Any:  # noqa: PLR0911
    """A valid value exercising every field: non-null union branches, one-item arrays."""
    if isinstance(schema, list):
        return example(next(b for b in schema if b != "null"), named, path)
    if isinstance(schema, str):
        if schema in PRIMITIVE_EXAMPLES:
            return f"{path}-1" if schema == "string" else PRIMITIVE_EXAMPLES[schema]
        return example(named[schema.rsplit(".", 1)[-1]], named, path)
    logical = schema.get("logicalType")
    if logical == "uuid":
        return uuid.uuid4()
    if logical == "timestamp-micros":
        return T0
    kind = schema["type"]
    if kind in ("enum", "record"):
        named[schema["name"]] = schema
    if kind == "enum":
        return schema["symbols"][-1]
    if kind == "array":
        return [example(schema["items"], named, path)]
    if kind == "record":
        return {f["name"]: example(f["type"], named, f["name"]) for f in schema["fields"]}
    return example(kind, named, path)


async def round_trip(kafka: KafkaSettings, prefix: str) -> None:
    first = await create_topics(kafka, prefix, partitions=2)
    assert first.created == tuple(t.full_name(prefix) for t in TOPICS)
    again = await create_topics(kafka, prefix, partitions=2)
    assert (again.created, again.existing) == ((), first.created)

    sent: dict[str, dict[str, Any]] = {}
    producer = clients.producer(kafka, acks="all")
    await clients.start(producer, kafka)
    try:
        for name in REGISTRY.names():
            record = example(REGISTRY.current(name).raw, {}, name)
            row = topic_for_event(name)
            # an event a topic also carries has no key (TelemetryWatermark)
            carried = name != row.value_event
            key = None if carried else row.key_of(record) or b"original-key"
            await producer.send_and_wait(row.full_name(prefix), CODEC.encode(name, record), key=key)
            sent[name] = record
    finally:
        await producer.stop()

    received: dict[str, dict[str, Any]] = {}
    consumer = clients.consumer(kafka, enable_auto_commit=False)
    await clients.start(consumer, kafka)
    try:
        partitions = [TopicPartition(t.full_name(prefix), p) for t in TOPICS for p in range(2)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batches = await consumer.getmany(timeout_ms=500)
                for tp, messages in batches.items():
                    for message in messages:
                        assert message.value is not None
                        decoded = CODEC.decode(message.value)
                        assert topic_for_event(decoded.name).full_name(prefix) == tp.topic
                        received[decoded.name] = decoded.record
    finally:
        await consumer.stop()
    assert received == sent


@pytest.mark.integration
def test_every_event_type_round_trips_through_kafka(kafka: KafkaSettings) -> None:
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    asyncio.run(round_trip(kafka, prefix))


@pytest.mark.integration
def test_topics_create_command_is_idempotent(
    kafka: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowerhub.cli import main

    prefix = f"cli-{uuid.uuid4().hex[:8]}."
    argv = ["topics", "create", "--bootstrap", kafka.bootstrap_servers, "--prefix", prefix]
    assert main([*argv, "--partitions", "1"]) == 0
    head, _, rest = capsys.readouterr().out.partition("\n")
    # replication follows the cluster: min(3, brokers), min.insync.replicas min(2, that)
    assert re.fullmatch(r"replication [123], min\.insync\.replicas [12]", head), head
    first = rest.split()
    assert first == [w for t in TOPICS for w in ("created", t.full_name(prefix))]
    assert main(argv) == 0
    second = capsys.readouterr().out.partition("\n")[2].split()
    assert second == [w for t in TOPICS for w in ("existing", t.full_name(prefix))]
