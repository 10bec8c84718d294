"""The gateway service: Kafka ``site.commands`` -> each home's MQTT command topic, and the
homes' uplink MQTT topics -> their Kafka topics. Stateless; run as many as wanted.

One *session* = one MQTT connection (client id = the instance's certificate CN, a
persistent session) + one Kafka consumer (group ``flowerhub-gateway``, the instances split
the command partitions) + one idempotent producer (acks=all). Any failure on either side
ends the session; the next starts after a backoff with jitter. State lives only in the
brokers: Kafka's committed offsets and the MQTT broker's session.

Delivery guarantees (at least once; duplicates carry their original ids):

- downlink: a command's Kafka offset is committed only after the MQTT broker's PUBACK for
  it (:class:`OffsetTracker`: the longest prefix of acknowledged offsets per partition). A
  gateway killed before that leaves the offset uncommitted: the next session (this or
  another instance) publishes it again; the bridge's idempotency store writes a command id
  to Modbus at most once.
- uplink: a home's QoS 1 message is acknowledged to the broker (manual PUBACK) only after
  Kafka acknowledged its record (acks=all), in arrival order. A gateway killed before that
  leaves the message unacknowledged in its MQTT session: the broker sends it again when the
  instance reconnects (same name). Subscriptions are MQTT v5 shared subscriptions
  (``$share/fh-gateway/...``), so each message goes to one instance.
- bad input (undecodable, wrong event for the channel, site mismatch): a DeadLetter on
  ``deadletter`` with the reason and the MQTT topic; the message is then acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition  # type: ignore[import-untyped, unused-ignore]  # no py.typed
from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]  # no py.typed

from contract.codec import Codec, default_codec
from contract.errors import EventError
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from contract.mqtt.client import MqttClient, MqttError, MqttMessage
from contract.mqtt.layout import UPLINK, gateway_identity, shared_filter
from contract.mqtt.settings import MqttSettings
from contract.topics import topic
from edge.bridge.offsets import OffsetError, OffsetTracker
from flowerhub.gateway.routing import (
    GatewayRejectError,
    Rejected,
    ToKafka,
    dead_letter,
    route_command,
    route_uplink,
)

log = logging.getLogger(__name__)

GROUP_ID = "flowerhub-gateway"
SESSION_EXPIRY_S = 600  # an instance restarted within this gets its unacknowledged uplinks
# Uplink messages in flight from the broker (acknowledged after Kafka's ack, so throughput is
# at most this / Kafka's ack latency: 10,000 keeps 2,000 msg/s flowing through 5 s acks)
RECEIVE_MAXIMUM = 10_000
COMMIT_EVERY_S = 0.05
LEAVE_S = 10.0  # a stopping gateway finishes the uplinks in hand within this
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 10.0


@dataclass
class GatewayStats:
    uplink_in: int = 0
    uplink_to_kafka: int = 0
    downlink_in: int = 0
    downlink_published: int = 0
    dead_letters: int = 0
    commits: int = 0
    sessions: int = 0
    last_error: str | None = None
    by_topic: dict[str, int] = field(default_factory=dict)
    #: dead letters by (consumer, error type); sessions ended by an error, by its type
    dead_letter_types: Counter[tuple[str, str]] = field(default_factory=Counter)
    session_failures: Counter[str] = field(default_factory=Counter)


def backoff_delays(low: float = BACKOFF_MIN_S, high: float = BACKOFF_MAX_S) -> Any:
    """Exponential backoff with full jitter (AWS's "full jitter": uniform in [0, cap])."""
    cap = low
    while True:
        yield random.uniform(low / 2, cap)
        cap = min(high, cap * 2)


def now_us() -> int:
    return time.time_ns() // 1000


class Gateway:
    def __init__(
        self,
        name: str,
        mqtt: MqttSettings,
        kafka: KafkaSettings,
        *,
        prefix: str = "",
        group_id: str = GROUP_ID,
        codec: Codec | None = None,
        downlink: bool = True,
        uplink: bool = True,
    ) -> None:
        self.name = name
        self.identity = gateway_identity(name)
        self.mqtt = mqtt
        self.kafka = kafka
        self.prefix = prefix
        self.group_id = group_id
        self.codec = codec or default_codec()
        self.downlink = downlink
        self.uplink = uplink
        self.commands_topic = topic("site.commands").full_name(prefix)
        self.stats = GatewayStats()
        self.ready = asyncio.Event()  # set once a session is connected and subscribed
        # for /metrics (flowerhub.gateway.metrics): this session's command consumer and the
        # offsets it committed
        self.consumer: Any = None
        self.committed: dict[TopicPartition, int] = {}
        self._pending: deque[tuple[MqttMessage, Awaitable[Any]]] = deque()

    @property
    def in_hand(self) -> int:
        """Uplink messages taken from the broker and not yet acknowledged to it."""
        return len(self._pending)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        delays = backoff_delays()
        while not stop.is_set():
            session = asyncio.create_task(self._session(stop), name=f"gateway:{self.name}")
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not session.done():  # stopping: the session leaves gracefully (see _leave)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(session), LEAVE_S + 5.0)
            if not session.done():
                session.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await session
                    delays = backoff_delays()
                except (MqttError, KafkaError, clients.KafkaUnreachableError, OSError) as exc:
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    self.stats.session_failures[type(exc).__name__] += 1
                    log.warning("gateway %s: session ended: %s", self.name, exc)
                except Exception as exc:  # a bug must not stop the boundary: logged, retried
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    self.stats.session_failures[type(exc).__name__] += 1
                    log.exception("gateway %s: session failed", self.name)
            self.ready.clear()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), next(delays))

    async def _session(self, stop: asyncio.Event) -> None:
        self.stats.sessions += 1
        producer = clients.producer(
            self.kafka, client_id=self.identity, linger_ms=2, request_timeout_ms=15_000
        )
        consumer = None
        client = MqttClient(
            self.mqtt,
            client_id=self.identity,
            clean_start=False,
            session_expiry_s=SESSION_EXPIRY_S,
            manual_ack=True,
            receive_maximum=RECEIVE_MAXIMUM,
            max_inflight=1000,
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            await clients.start(producer, self.kafka)
            await client.connect()
            if self.uplink:
                await client.subscribe([shared_filter(c) for c in UPLINK])
                tasks.append(asyncio.create_task(self._uplink(client, producer)))
            if self.downlink:
                consumer = clients.consumer(
                    self.kafka,
                    self.commands_topic,
                    group_id=self.group_id,
                    client_id=self.identity,
                    auto_offset_reset="earliest",
                )
                self.consumer, self.committed = consumer, {}
                await clients.start(consumer, self.kafka)
                tasks.append(asyncio.create_task(self._downlink(consumer, client, producer)))
            self.ready.set()
            log.info("gateway %s: connected to %s and Kafka", self.name, self.mqtt.address)
            stopping = asyncio.ensure_future(stop.wait())
            watched: set[asyncio.Future[Any]] = {client.closed, stopping, *tasks}
            try:
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if stop.is_set() and not client.closed.done():
                await self._leave(client)
                return
            for t in done:
                if t is client.closed:
                    raise MqttError(f"MQTT connection lost: {client.closed.result()}")
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            with contextlib.suppress(Exception):
                await client.disconnect()
            if consumer is not None:
                self.consumer = None
                await clients.stop(consumer)
            await clients.stop(producer)

    async def _leave(self, client: MqttClient) -> None:
        """A stop, not a crash: take no more uplinks (unsubscribe: the broker sends them to
        the other instances), finish those in hand (produced and acknowledged), then end the
        MQTT session, so the broker never queues a share of the uplinks for an instance that
        is gone. Commands not yet acknowledged stay uncommitted for the next owner."""
        if self.uplink:
            with contextlib.suppress(MqttError, TimeoutError):
                await client.unsubscribe([shared_filter(c) for c in UPLINK])
            for _ in range(int(LEAVE_S / 0.02)):  # polled: the acks come from Kafka's side
                if not (client.messages.qsize() or self.in_hand):
                    break
                await asyncio.sleep(0.02)
        await client.disconnect(end_session=True)
        log.info("gateway %s: left (session ended)", self.name)

    # ------------------------------------------------------------------ uplink
    async def _uplink(self, client: MqttClient, producer: Any) -> None:
        """Each message: route, produce (acks=all), then PUBACK, in arrival order."""
        pending: deque[tuple[MqttMessage, Awaitable[Any]]] = deque()
        self._pending = pending
        wake = asyncio.Event()

        async def acker() -> None:
            while True:
                while not pending:
                    wake.clear()
                    await wake.wait()
                msg, acked = pending[0]
                await acked  # a Kafka failure raises: the session ends, nothing is PUBACKed
                pending.popleft()
                client.ack(msg)
                self.stats.uplink_to_kafka += 1

        ack_task = asyncio.create_task(acker())
        try:
            while True:
                get = asyncio.ensure_future(client.messages.get())
                try:
                    await asyncio.wait({get, ack_task}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not get.done():
                        get.cancel()
                if ack_task.done():
                    ack_task.result()
                    raise MqttError("the acknowledging task ended")
                msg = get.result()
                self.stats.uplink_in += 1
                routed = route_uplink(
                    msg.topic,
                    msg.payload,
                    self.codec,
                    consumer=self.identity,
                    now_us=now_us(),
                    prefix=self.prefix,
                )
                if isinstance(routed, ToKafka):
                    fut = await producer.send(routed.topic, value=routed.value, key=routed.key)
                    by = self.stats.by_topic
                    by[routed.topic] = by.get(routed.topic, 0) + 1
                else:
                    fut = await self._send_dead_letter(producer, routed)
                pending.append((msg, fut))
                wake.set()
        finally:
            ack_task.cancel()
            with contextlib.suppress(BaseException):
                await ack_task

    async def _send_dead_letter(self, producer: Any, rejected: Rejected) -> Awaitable[Any]:
        self.stats.dead_letters += 1
        record = rejected.record
        self.stats.dead_letter_types[(str(record["consumer"]), str(record["error_type"]))] += 1
        log.warning(
            "gateway %s: dead letter from %s: %s: %s",
            self.name,
            rejected.record["source_topic"],
            rejected.record["error_type"],
            rejected.record["reason"],
        )
        value = self.codec.encode("DeadLetter", rejected.record)
        fut: Awaitable[Any] = await producer.send(rejected.topic, value=value, key=rejected.key)
        return fut

    # ---------------------------------------------------------------- downlink
    async def _downlink(self, consumer: Any, client: MqttClient, producer: Any) -> None:
        """Each command: publish QoS 1; commit its offset after the PUBACK."""
        offsets = OffsetTracker()
        failed: list[BaseException] = []

        def finished(partition: int, offset: int) -> Any:
            def done(fut: asyncio.Future[Any]) -> None:
                if fut.cancelled():
                    return
                exc = fut.exception()
                if exc is not None:
                    failed.append(exc)
                    return
                self.stats.downlink_published += 1
                with contextlib.suppress(OffsetError):
                    offsets.finished(partition, offset)

            return done

        last_commit = time.monotonic()
        while True:
            if failed:
                raise failed[0]
            batches = await consumer.getmany(timeout_ms=50, max_records=500)
            for records in batches.values():
                for rec in records:
                    self.stats.downlink_in += 1
                    offsets.started(rec.partition, rec.offset)
                    fut = await self._publish_command(client, producer, rec)
                    fut.add_done_callback(finished(rec.partition, rec.offset))
            if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                last_commit = time.monotonic()
                commit = offsets.committable()
                if commit:
                    done = {TopicPartition(self.commands_topic, p): o for p, o in commit.items()}
                    await consumer.commit(done)
                    self.committed.update(done)
                    self.stats.commits += 1

    async def _publish_command(self, client: MqttClient, producer: Any, rec: Any) -> Any:
        value: bytes = rec.value or b""
        try:
            record = self.codec.decode_as("SiteCommand", value) if rec.value else None
            out = route_command(record, rec.key, value, now_us=now_us())
        except (EventError, GatewayRejectError) as exc:
            rejected = dead_letter(
                source_topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                key=rec.key,
                value=value,
                error=exc,
                consumer=self.identity,
                now_us=now_us(),
                prefix=self.prefix,
            )
            return asyncio.ensure_future(await self._send_dead_letter(producer, rejected))
        return client.publish(out.topic, out.payload, qos=1, expiry_s=out.expiry_s)
