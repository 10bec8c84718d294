"""What every agent shares: the topic handles, the clock, encoding, sending and dead letters.

An agent is thin: for each event it decodes (``contract.codec``), calls its pure step, and
sends the records the step returns through :meth:`AgentContext.send`. Any error on one event
(``contract.errors.EventError`` for bad input; any other exception is a step bug) sends that
event to ``deadletter`` with the reason and the original bytes (:meth:`dead_letter`) and the
agent goes on with the next event: an agent never dies of bad input.

Topics carry raw bytes (``key_serializer``/``value_serializer`` ``"raw"``): the project codec
(Avro single-object encoding) is applied here, not by Faust.

``outputs`` maps a logical topic name to the channel an agent sends to: the Kafka topic in a
worker; tests may replace an entry with an in-memory ``app.channel()`` and read what the
agent produced from it (Faust's test context does not start a producer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import faust
from faust.types import ChannelT, EventT, TopicT

from contract.codec import decode, decode_raw, encode
from contract.errors import InvalidEventError
from contract.kafka import clients
from contract.kafka.delivery import AckedSender, DeliveryCounts, Outgoing, stop_within
from contract.topics import topic as topic_row
from streams.agents.batching import KeyedBatchSender
from streams.settings import StreamsSettings
from streams.steps.deadletter import ConsumedRecord, build_dead_letter, kafka_event_time
from streams.steps.plain import branch_encoder

log = logging.getLogger(__name__)

MICROS_PER_S = 1_000_000


class Delivered(NamedTuple):
    """Where an input record came from and its original bytes (a dead letter's source);
    ``event_time`` in int microseconds, or None."""

    topic: str
    partition: int
    offset: int
    key: Any
    value: Any
    event_time: int | None


def wall_clock_micros() -> int:
    """Processing time, int microseconds since the epoch (UTC)."""
    return time.time_ns() // 1000


class ForeignFleetError(InvalidEventError):
    """A fleet-level event for another fleet than the worker's ``fleet_id``."""


@dataclass
class AgentContext:
    """The app-wide wiring handed to each agent module's ``register``."""

    app: faust.App
    settings: StreamsSettings
    partitions: int | None = None
    clock: Callable[[], int] = wall_clock_micros
    outputs: dict[str, ChannelT[Any]] = field(default_factory=dict)
    #: dead letters sent, by (consumer, error type); the outputs' delivery, over every
    #: sender the worker had (``streams.metrics`` exposes both)
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)
    delivery: DeliveryCounts = field(default_factory=DeliveryCounts)
    _inputs: dict[tuple[str, ...], TopicT] = field(default_factory=dict)
    _batchers: dict[str, KeyedBatchSender] = field(default_factory=dict)
    _sender: AckedSender | None = None
    _sender_lock: asyncio.Lock | None = None

    def partitions_of(self, name: str) -> int:
        """Partition count of a logical topic (the table row unless overridden)."""
        return self.partitions or topic_row(name).partitions

    def topic(self, *names: str) -> TopicT:
        """The Faust topic (raw bytes) over one or more logical topics (prefixed names)."""
        handle = self._inputs.get(names)
        if handle is None:
            counts = {self.partitions_of(n) for n in names}
            handle = self.app.topic(
                *(self.settings.topic(n) for n in names),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=counts.pop() if len(counts) == 1 else None,
            )
            self._inputs[names] = handle
        return handle

    def output(self, name: str) -> ChannelT[Any]:
        """Where records for logical topic ``name`` go (``outputs`` entry, else the topic)."""
        channel = self.outputs.get(name)
        if channel is None:
            channel = self.outputs[name] = self.topic(name)
        return channel

    async def sender(self) -> AckedSender:
        """The worker's per-record acknowledged sender (``contract.kafka.delivery``): every
        output of the agents goes through it, on a producer of its own (acks=all,
        idempotent), replaced by a fresh one if its sequence breaks (e.g. a batch expired
        while its partition had no leader; Faust's own producer could not be replaced)."""
        if self._sender is None:
            if self._sender_lock is None:
                self._sender_lock = asyncio.Lock()
            async with self._sender_lock:
                if self._sender is None:
                    self._sender = AckedSender(
                        await self._started_producer(),
                        name=f"{self.settings.app_id} outputs",
                        producer_factory=self._started_producer,
                        counts=self.delivery,
                    )
        return self._sender

    async def _started_producer(self) -> Any:
        settings = self.settings
        producer = clients.producer(
            settings,
            client_id=f"{settings.app_id}-outputs",
            linger_ms=2,
            # per-partition batches of a fan-out of up to 512 KiB: one fleet setpoint's
            # 10,000 commands in a few round trips per partition
            max_batch_size=512 * 1024,
        )
        await clients.start(producer, settings)
        return producer

    def unacked(self) -> list[Outgoing]:
        """Outputs sent and not acknowledged yet."""
        return [] if self._sender is None else self._sender.unacked()

    async def close_sender(self, timeout_s: float = 5.0) -> list[Outgoing]:
        """Stop the sender and its producer within ``timeout_s`` (Kafka reachable or not);
        the outputs not acknowledged (their inputs are not committed: read again)."""
        sender, self._sender = self._sender, None
        if sender is None:
            return []
        left = await sender.close(drain_s=timeout_s / 2)
        await stop_within(sender.producer, timeout_s / 2)
        if left:
            log.warning(
                "%s: stopped with %d output(s) not acknowledged; their inputs are read again",
                sender.name,
                len(left),
            )
        return left

    async def send(self, name: str, event_name: str, record: Mapping[str, Any]) -> None:
        """Encode ``record`` as ``event_name`` and send it to ``name``, keyed per the table;
        to a Kafka topic, returns once Kafka acknowledged it (per-record delivery)."""
        key = topic_row(name).key_of(record)
        await self._send_raw(name, key, encode(event_name, record))

    async def _send_raw(self, name: str, key: bytes | None, value: bytes) -> None:
        channel = self.output(name)
        if not isinstance(channel, TopicT):  # in-memory channel (tests)
            await channel.send(key=key, value=value)
            return
        sender = await self.sender()
        await sender.deliver([Outgoing(self.settings.topic(name), value, key)])

    async def send_many(
        self, name: str, event_name: str, records: Iterable[Mapping[str, Any]]
    ) -> int:
        """Encode and send every record as ``event_name`` to ``name`` (keyed per the table) and
        wait until Kafka acknowledged them all; returns how many were sent. The records are
        the steps' own ``to_record()`` output (int microseconds, str uuids): encoded with the
        raw codec, which writes the same bytes as the default codec for them without building
        a ``uuid.UUID`` per id field (9 -> 6 us per record), naming the branch of a record
        union (``plain.branch_encoder``: an ARM_RESERVE 19 -> 12 us).

        To a Kafka topic the records go in per-partition batches on the app's own producer
        through the per-record acknowledged sender (:meth:`sender`, via
        :class:`~streams.agents.batching.KeyedBatchSender`: the same murmur2 partitions as
        Faust's send, so the order per key is kept; a partition without a leader delays only
        its own records, and a failed batch resends only its own records); to an in-memory
        ``outputs`` channel (tests) one by one. Awaiting the acknowledgements here means the
        event being processed is done only once its outputs are in Kafka, whatever Faust
        commits afterwards.
        """
        channel = self.output(name)
        key_of = topic_row(name).key_of
        if not isinstance(channel, TopicT):
            count = 0
            for record in records:
                await channel.send(key=key_of(record), value=encode(event_name, record))
                count += 1
            return count
        batcher = await self._batcher(name)
        raw_encode = branch_encoder(event_name)  # raw codec: the same bytes, faster
        pairs: list[tuple[bytes, bytes]] = []
        for record in records:
            key = key_of(record)
            if key is None:  # batches go by key partition: only keyed topics
                raise InvalidEventError(f"{event_name} for {name} has no key")
            pairs.append((key, raw_encode(record)))
        await (await batcher.send_all(pairs))
        return len(pairs)

    async def _batcher(self, name: str) -> KeyedBatchSender:
        batcher = self._batchers.get(name)
        if batcher is None:
            sender = await self.sender()
            batcher = self._batchers[name] = KeyedBatchSender(
                sender.producer, self.settings.topic(name), self.partitions_of(name), sender
            )
        return batcher

    async def dead_letter(self, event: EventT[Any], error: BaseException, consumer: str) -> None:
        """Send a Faust event's original bytes to ``deadletter`` with ``error`` as the reason."""
        message = event.message
        timestamp = message.timestamp  # Faust: seconds since the epoch
        await self.dead_letter_message(
            Delivered(
                message.topic,
                message.partition,
                message.offset,
                message.key,
                message.value,
                round(timestamp * MICROS_PER_S) if timestamp else None,
            ),
            error,
            consumer,
        )

    async def dead_letter_record(
        self, record: ConsumedRecord, error: BaseException, consumer: str
    ) -> None:
        """Send a consumed aiokafka record's original bytes to ``deadletter`` (``timestamp``
        in milliseconds, Kafka's)."""
        timestamp = record.timestamp
        await self.dead_letter_message(
            Delivered(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                kafka_event_time(timestamp),
            ),
            error,
            consumer,
        )

    async def dead_letter_message(
        self, message: Delivered, error: BaseException, consumer: str
    ) -> None:
        """Build and send the DeadLetter of ``message``; a dead letter that cannot be built or
        sent is logged, never raised."""
        key, value = message.key, message.value
        try:
            record = build_dead_letter(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=key if isinstance(key, bytes) else None,
                value=value if isinstance(value, bytes) else None,
                error=error,
                consumer=consumer,
                now=self.clock(),
                event_time=message.event_time,
            )
            await self._send_raw("deadletter", record["key"], encode("DeadLetter", record))
        except Exception:  # a dead letter that cannot be built or sent is logged, never fatal
            log.exception(
                "%s: could not dead-letter %s[%d]@%d",
                consumer,
                message.topic,
                message.partition,
                message.offset,
            )
            return
        self.dead_letters[(consumer, type(error).__name__)] += 1
        log.warning(
            "%s: %s[%d]@%d -> deadletter: %s: %s",
            consumer,
            message.topic,
            message.partition,
            message.offset,
            type(error).__name__,
            error,
        )


def started_kafka_producer(app: faust.App) -> Any | None:
    """The app's ``AIOKafkaProducer`` (the one Faust's own sends go through) once Faust
    started it, else None (e.g. in Faust's test context, which starts no producer).

    Faust 0.15.3 has no public accessor for it: its aiokafka driver keeps it in
    ``faust.transport.drivers.aiokafka.Producer._producer`` from ``on_start`` to ``on_stop``.
    """
    kafka = getattr(app.producer, "_producer", None)
    return kafka if kafka is not None and hasattr(kafka, "create_batch") else None


async def app_kafka_producer(app: faust.App) -> Any:
    """The app's ``AIOKafkaProducer``, the Faust producer started if it was not yet
    (``RuntimeError`` when the app's transport is not Faust's aiokafka driver)."""
    producer = await app.maybe_start_producer()
    kafka = started_kafka_producer(app)
    if kafka is None:
        raise RuntimeError(
            f"the app's producer {type(producer).__name__} holds no started AIOKafkaProducer"
        )
    return kafka


def decode_value(event: EventT[Any]) -> tuple[str, dict[str, Any]]:
    """``(event name, record)`` of an event's raw value (``EventDecodeError`` when it is not
    one of ours)."""
    value = event.message.value
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidEventError(f"expected bytes, got {type(value).__name__}")
    decoded = decode(value)
    return decoded.name, decoded.record


def decode_raw_value(event: EventT[Any]) -> tuple[str, dict[str, Any]]:
    """``decode_value`` with the raw codec (``contract.codec.decode_raw``: int microseconds,
    str uuids, no datetime/UUID objects): the hot-path agents' decode."""
    value = event.message.value
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidEventError(f"expected bytes, got {type(value).__name__}")
    decoded = decode_raw(value)
    return decoded.name, decoded.record


def expect(name: str, allowed: frozenset[str], topic: str) -> None:
    """Raise ``InvalidEventError`` when an event of type ``name`` does not belong here."""
    if name not in allowed:
        raise InvalidEventError(
            f"{name} does not belong on {topic} (expected {', '.join(sorted(allowed))})"
        )


def check_fleet(fleet_id: str, settings: StreamsSettings) -> None:
    if fleet_id != settings.fleet_id:
        raise ForeignFleetError(f"fleet_id {fleet_id!r} is not this worker's {settings.fleet_id!r}")
