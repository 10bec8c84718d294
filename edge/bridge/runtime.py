"""The bridge process: site controllers + a Kafka consumer for site.commands + the outbox flusher.

* Sites run whatever Kafka does: telemetry polling, expiry and the armed droop never wait for
  the broker ("keeps executing the last valid command until it expires").
* Consumer: ``site.commands``, consumer group ``edge-bridge-<bridge_id>``, manual commits. A
  message keyed by a site this process owns is decoded and submitted; one whose key is owned
  but whose body names another site is refused and reported (FOREIGN_SITE); messages keyed for
  other bridges' sites are not ours and only move the offset. Offsets are committed only once
  the command's outcome is persisted (:class:`OffsetTracker`).
* Disk: one thread (:mod:`edge.bridge.diskwriter`) makes claims, outcomes and the outbox
  durable in group commits; the event loop never waits for an fsync except where a guarantee
  needs it (a command's claim before its first write).
* Flusher: sends the outbox in order (idempotent producer, acks=all) and acknowledges records
  only after the broker did; when Kafka is unreachable the outbox simply grows (bounded, see
  ``outbox``) and drains on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from aiokafka import (  # type: ignore[import-untyped, unused-ignore]  # ships no py.typed
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]  # no py.typed

from contract.deadletter import build_dead_letter
from contract.errors import EventDecodeError
from contract.kafka import clients
from contract.kafka.admin import report_replication
from contract.kafka.delivery import AckedSender, DeliveryCounts, Outgoing, finish, stop_within
from contract.kafka.settings import KafkaSettings
from edge.bridge.config import BridgeConfig, ConfigError, SiteConfig, Transport
from edge.bridge.diskwriter import DiskWriter
from edge.bridge.events import COMMAND, command_from_record, unusable
from edge.bridge.idempotency import IdempotencyStore, Tracking
from edge.bridge.model import BridgeCommand, BridgeInputError
from edge.bridge.mqtt_link import TRACKING_PREFIX, MqttLink
from edge.bridge.observe import CommandTrace
from edge.bridge.offsets import OffsetError, OffsetTracker
from edge.bridge.outbox import Outbox
from edge.bridge.shutdown import cancel_and_wait
from edge.bridge.sink import BridgeTopics, EventSink
from edge.bridge.site import SiteController
from edge.hal.connect import OpenDevice, open_device
from edge.hal.errors import MapError
from edge.hal.maps import load_all
from edge.hal.registermap import RegisterMap

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0  # then the files are closed even if a task ignored cancellation
PRODUCER_STOP_S = 3.0  # the producer stops within this even with Kafka unreachable
CONSUMER_STOP_S = 3.0  # the consumer leaves its group within this, or is closed
# SIGTERM -> stopped, whatever Kafka does: the tasks' grace, the producer's stop, files closed
STOP_BOUND_S = SHUTDOWN_GRACE_S + 2.0
MAX_IN_FLIGHT = 20_000  # outbox records handed to the sender and not acknowledged yet
STALL_S = 15.0  # records out and no acknowledgement for this long: Kafka counts as down


@functools.cache
def _maps() -> dict[str, RegisterMap]:
    """The register maps, parsed and validated once per process (not once per site)."""
    return load_all()


def hal_device(site: SiteConfig) -> OpenDevice:
    """The HAL device for a site: its OEM's register map over a Modbus TCP transport."""
    maps = _maps()
    rmap = maps.get(site.oem)
    if rmap is None:
        raise ConfigError(
            f"site {site.site_id}", f"no register map for oem {site.oem!r}; have {sorted(maps)}"
        )
    try:
        return open_device(
            rmap,
            site.host,
            site.port,
            site.unit_id,
            policy=site.control_policy(),
            link=site.link,
            variant=site.variant,
            rediscover_hosts=site.rediscover_hosts,
            rediscover_ports=site.rediscover_ports,
        )
    except MapError as exc:
        raise ConfigError(f"site {site.site_id}", str(exc)) from None


def kafka_settings(config: BridgeConfig) -> KafkaSettings:
    """The config file's ``kafka:`` section over the ``FLOWERHUB_*`` environment (the CLI
    puts its flags on top: ``flowerhub.cli.bridge``)."""
    from contract.kafka.cliargs import resolve

    return resolve(config.kafka_options)


@dataclass
class BridgeStats:
    consumed: int = 0
    skipped_not_ours: int = 0
    undecodable: int = 0
    refused: int = 0  # decoded, but invalid for the bridge: REJECTED with the reason
    sent: int = 0
    send_failures: int = 0
    dead_letters: int = 0
    commits: int = 0
    kafka_up: bool = False
    last_kafka_error: str | None = None
    seen_partitions: set[int] = field(default_factory=set)
    #: dead letters by (consumer, error type), as the DeadLetter names them
    dead_letter_types: Counter[tuple[str, str]] = field(default_factory=Counter)


class Bridge:
    """One bridge process serving the sites of its config."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        topics: BridgeTopics | None = None,
        kafka: KafkaSettings | None = None,
        device_factory: Callable[[SiteConfig], OpenDevice] = hal_device,
        flush_batch: int = 500,
        auto_offset_reset: str = "earliest",
    ) -> None:
        self.config = config
        self.topics = topics or BridgeTopics()
        self.kafka = kafka if kafka is not None else kafka_settings(config)
        self.group_id = f"edge-bridge-{config.bridge_id}"
        self.flush_batch = flush_batch
        self.auto_offset_reset = auto_offset_reset
        ob = config.outbox
        self.outbox = Outbox(
            ob.dir,
            max_bytes=ob.max_bytes,
            max_events=ob.max_events,
            critical_max_bytes=ob.critical_max_bytes,
            segment_bytes=ob.segment_bytes,
            fsync_interval_s=ob.fsync_interval_s,
            defer_sync=True,  # fsyncs happen in the disk thread (diskwriter)
        )
        self.store = IdempotencyStore(
            config.state_dir / "idempotency.sqlite", config.idempotency_retention_s
        )
        self.writer = DiskWriter(self.store, self.outbox)
        self.sink = EventSink(self.outbox, self.topics)
        self.offsets = OffsetTracker()
        self.stats = BridgeStats()
        # for /metrics (edge.bridge.metrics): the uplink's delivery over every sender, the
        # command consumer of this session and the offsets it committed
        self.delivery = DeliveryCounts()
        self.consumer: AIOKafkaConsumer | None = None
        self.committed: dict[TopicPartition, int] = {}
        self.mqtt: MqttLink | None = None
        if config.uplink is Transport.MQTT and config.mqtt is not None:
            self.mqtt = MqttLink(
                config.bridge_id,
                config.mqtt,
                site_ids=[s.site_id for s in config.sites],
                submit=self._submit,
                sink=self.sink,
                outbox=self.outbox,
                stats=self.stats,
                flush_batch=flush_batch,
            )
        self._devices = [device_factory(s) for s in config.sites]
        self.sites: dict[str, SiteController] = {
            s.site_id: SiteController(
                s,
                d.device,
                writer=self.writer,
                sink=self.sink,
                telemetry_interval_s=config.telemetry_interval_s,
                status_interval_s=config.status_interval_s,
                on_persisted=self._persisted,
                rediscover=d.rediscover,
            )
            for s, d in zip(config.sites, self._devices, strict=True)
        }
        self._outbox_event = asyncio.Event()
        # set once the consumer has its partitions (MQTT: every site subscribed)
        self.ready = self.mqtt.ready if self.mqtt is not None else asyncio.Event()
        self._sender: AckedSender | None = None
        self._unacked: list[Outgoing] = []  # what the last sender left (named at shutdown)
        self._last_ack = time.monotonic()
        self._trace: TextIO | None = None
        if config.latency_trace is not None:
            config.latency_trace.parent.mkdir(parents=True, exist_ok=True)
            self._trace = config.latency_trace.open("a", encoding="utf-8")
            for c in self.sites.values():
                c.commands.on_trace = self._write_trace

    async def _check_replication(self) -> None:
        """Once at start: the topics the bridge uses below the cluster's replication rule
        are named in the log, with the commands that fix them (never fatal)."""
        topics = [self.topics.command_topic, *self.topics.outgoing()]
        await report_replication(self.kafka, topics, f"bridge {self.config.bridge_id}", log)

    @property
    def sending(self) -> int:
        """Outbox records handed to Kafka and not acknowledged yet (Kafka uplink)."""
        return 0 if self._sender is None else self._sender.pending

    def _write_trace(self, trace: CommandTrace) -> None:
        """One line per applied command (buffered; the file is closed with the bridge)."""
        if self._trace is not None:
            self._trace.write(json.dumps(asdict(trace)) + "\n")

    def _submit(self, site_id: str, cmd: BridgeCommand, tracking: Tracking) -> None:
        self.sites[site_id].submit(cmd, tracking)

    def _persisted(self, tracking: Tracking | None) -> None:
        if tracking is None:
            return
        if self.mqtt is not None and tracking.topic.startswith(TRACKING_PREFIX):
            self.mqtt.persisted(tracking)
            return
        # OffsetError: delivered to a consumer session that has ended; the new one redelivers.
        with contextlib.suppress(OffsetError):
            self.offsets.finished(tracking.partition, tracking.offset)

    # ------------------------------------------------------------------ run
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever); always releases devices and files."""
        stop = stop or asyncio.Event()
        # Polls spread evenly over one interval: no thundering herd of reads every second.
        step = self.config.telemetry_interval_s / max(1, len(self.sites))
        tasks = [
            asyncio.create_task(c.run_telemetry(phase_s=i * step), name=f"telemetry:{sid}")
            for i, (sid, c) in enumerate(self.sites.items())
        ]
        tasks += [
            asyncio.create_task(c.run_commands(), name=f"commands:{sid}")
            for sid, c in self.sites.items()
        ]
        tasks += [
            asyncio.create_task(c.run_reserve(), name=f"reserve:{sid}")
            for sid, c in self.sites.items()
        ]
        if self.mqtt is not None:
            tasks += [asyncio.create_task(t, name="mqtt") for t in self.mqtt.tasks()]
        else:
            tasks += [
                asyncio.create_task(self._check_replication(), name="replication-check"),
                asyncio.create_task(self._consume_forever(), name="consumer"),
                asyncio.create_task(self._flush_forever(), name="outbox-flusher"),
            ]
        tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        try:
            await stop.wait()
        finally:
            hung = await cancel_and_wait(tasks, grace_s=SHUTDOWN_GRACE_S)
            if hung:
                log.error(
                    "bridge %s: %d task(s) ignored cancellation for %.0f s, closing anyway: %s",
                    self.config.bridge_id,
                    len(hung),
                    SHUTDOWN_GRACE_S,
                    ", ".join(hung[:10]),
                )
            await self.close()

    async def close(self) -> None:
        for site in self.sites.values():
            await site.stop_observers()
        for d in self._devices:
            with contextlib.suppress(Exception):
                await d.close()
        await self.writer.aclose()
        if self.outbox.depth:
            log.warning(
                "bridge %s: %d event(s) not delivered stay in the outbox %s (%d bytes; sent at "
                "the next start)",
                self.config.bridge_id,
                self.outbox.depth,
                self.outbox.dir,
                self.outbox.size_bytes,
            )
        self.outbox.close()
        self.store.close()
        if self._trace is not None:
            self._trace.close()
            self._trace = None

    # -------------------------------------------------------------- consumer
    async def _consume_forever(self) -> None:
        backoff = 0.5
        while True:
            consumer = clients.consumer(
                self.kafka,
                self.topics.command_topic,
                group_id=self.group_id,
                client_id=self.group_id,
                auto_offset_reset=self.auto_offset_reset,
            )
            self.offsets = OffsetTracker()  # a new session starts at the committed offsets
            self.consumer, self.committed = consumer, {}
            try:
                await clients.start(consumer, self.kafka)
                backoff = 0.5
                await self._consume(consumer)
            except (KafkaError, clients.KafkaUnreachableError) as exc:
                self.stats.last_kafka_error = f"consumer: {exc}"
                log.warning("bridge %s: consumer: %s", self.config.bridge_id, exc)
            except Exception:  # e.g. OutboxFullError: stop consuming, retry from the commit
                log.exception("bridge %s: consumer stopped", self.config.bridge_id)
            finally:  # bounded: a frozen broker must not hold the bridge's stop
                await finish(stop_within(consumer, CONSUMER_STOP_S))
            await asyncio.sleep(backoff)
            backoff = min(5.0, backoff * 2)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        committer = asyncio.create_task(self._commit_forever(consumer))
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=500)
                if committer.done():  # a failed commit ends this consumer session
                    committer.result()
                if consumer.assignment() and not self.ready.is_set():
                    for tp in consumer.assignment():
                        await consumer.position(tp)
                    self.ready.set()
                for records in batches.values():
                    for rec in records:
                        self._on_message(rec)
        finally:
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await committer

    async def _commit_forever(self, consumer: AIOKafkaConsumer, every_s: float = 0.1) -> None:
        """Offsets of persisted outcomes, committed beside the fetch loop: a commit's round
        trip to the broker never delays the next command (commits only matter after a
        restart, and the idempotency store already keeps a replay from writing twice)."""
        topic = self.topics.command_topic
        while True:
            await asyncio.sleep(every_s)
            commit = self.offsets.committable()
            if commit:
                offsets = {TopicPartition(topic, p): o for p, o in commit.items()}
                await consumer.commit(offsets)
                self.committed.update(offsets)
                self.stats.commits += 1

    def _on_message(self, rec: ConsumerRecord[bytes, bytes]) -> None:
        self.stats.consumed += 1
        self.stats.seen_partitions.add(rec.partition)
        self.offsets.started(rec.partition, rec.offset)
        tracking = Tracking(rec.topic, rec.partition, rec.offset)
        key = rec.key.decode("utf-8", "replace") if rec.key is not None else None
        if key is not None and key not in self.sites:
            self.stats.skipped_not_ours += 1
            self.offsets.finished(rec.partition, rec.offset)
            return
        try:
            if rec.value is None:
                raise BridgeInputError("empty message")
            record = self.sink.codec.decode_as(COMMAND, rec.value)
        except (EventDecodeError, BridgeInputError) as exc:
            self.stats.undecodable += 1
            self._dead_letter(rec, exc)
            self.offsets.finished(rec.partition, rec.offset)
            return
        try:
            cmd = command_from_record(record)
        except BridgeInputError as exc:
            self._refuse(key, record, exc, rec, tracking)
            return
        site = self.sites.get(key) if key is not None else self.sites.get(cmd.site_id)
        if site is None:  # unkeyed and for another bridge's site
            self.stats.skipped_not_ours += 1
            self.offsets.finished(rec.partition, rec.offset)
            return
        # A keyed message whose body names another site reaches the gate, which refuses it.
        site.submit(cmd, tracking)

    def _dead_letter(self, rec: ConsumerRecord[bytes, bytes], exc: Exception) -> None:
        """Undecodable bytes on the command topic go to ``deadletter`` with the reason and
        the original bytes (through the outbox, like every event of the bridge), as the
        streams worker does; never fatal."""
        try:
            letter = build_dead_letter(
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                key=rec.key,
                value=rec.value,
                error=exc,
                consumer=self.group_id,
                now=time.time_ns() // 1000,
                event_time=rec.timestamp * 1000 if rec.timestamp and rec.timestamp > 0 else None,
            )
            self.sink.dead_letter(letter)
        except Exception:  # e.g. OutboxFullError: logged, the offset moves on
            log.exception("bridge: could not dead-letter %s/%s", rec.partition, rec.offset)
            return
        self.stats.dead_letters += 1
        self.stats.dead_letter_types[(self.group_id, type(exc).__name__)] += 1
        log.warning(
            "bridge: undecodable command at %s/%s -> deadletter: %s: %s",
            rec.partition,
            rec.offset,
            type(exc).__name__,
            exc,
        )

    def _refuse(
        self,
        key: str | None,
        record: dict[str, Any],
        exc: BridgeInputError,
        rec: ConsumerRecord[bytes, bytes],
        tracking: Tracking,
    ) -> None:
        """A command that decodes but that the bridge cannot act on: REJECTED with the reason
        by the site it is for (never dropped silently); one naming no site or command id of
        ours is counted and logged."""
        bad = unusable(record, exc, datetime.now(UTC))
        site = self.sites.get(key if key is not None else str(record.get("site_id")))
        if bad is None or site is None:
            self.stats.undecodable += 1
            log.warning("bridge: unusable command at %s/%s: %s", rec.partition, rec.offset, exc)
            self.offsets.finished(rec.partition, rec.offset)
            return
        self.stats.refused += 1
        log.warning("bridge: command %s refused: %s", bad.command_id, exc)
        site.refuse(bad, tracking)

    # --------------------------------------------------------------- flusher
    def _new_producer(self) -> AIOKafkaProducer:
        return clients.producer(  # acks=all, idempotent
            self.kafka,
            client_id=self.group_id,
            linger_ms=5,
            request_timeout_ms=15_000,
        )

    async def _started_producer(self) -> AIOKafkaProducer:
        """A started producer (the per-record sender's replacement when one breaks)."""
        producer = self._new_producer()
        await clients.start(producer, self.kafka)
        return producer

    async def _flush_forever(self) -> None:
        """One producer, one per-record acknowledged sender (``contract.kafka.delivery``) for
        the whole run: the outbox's records go out lane by lane (one lane per partition), and
        each is marked delivered when its own batch was acknowledged. A partition without a
        leader holds up only its own sites' records; a failed batch resends only its own
        records, through the same idempotent producer."""
        backoff = 0.5
        while True:
            producer = self._new_producer()
            try:
                await clients.start(producer, self.kafka)
            except (KafkaError, clients.KafkaUnreachableError) as exc:
                self.stats.kafka_up = False
                self.stats.send_failures += 1
                self.stats.last_kafka_error = f"producer: {exc}"
                log.warning("bridge %s: producer: %s", self.config.bridge_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            self.stats.kafka_up = True
            sender = AckedSender(
                producer,
                name=f"bridge {self.config.bridge_id} outbox",
                on_ack=self._delivered,
                on_reject=self._never_sent,
                producer_factory=self._started_producer,
                counts=self.delivery,
            )
            self._sender = sender
            try:
                await self._flush(sender)
            finally:
                await finish(self._wind_down(sender))

    async def _wind_down(self, sender: AckedSender) -> None:
        """The sender's lanes stopped (what they held stays in the outbox), the producer
        stopped within ``PRODUCER_STOP_S``."""
        self._unacked = await sender.close()
        self._sender = None
        await stop_within(sender.producer, PRODUCER_STOP_S)

    def _delivered(self, records: list[Outgoing]) -> None:
        self.outbox.ack(r.ref for r in records)
        self.stats.sent += len(records)
        self.stats.kafka_up = True
        self._last_ack = time.monotonic()

    def _never_sent(self, record: Outgoing, reason: str) -> None:
        """A record Kafka will never take (larger than a request): out of the outbox, named."""
        self.stats.send_failures += 1
        self.stats.last_kafka_error = f"{record.topic}: {reason}"
        log.error(
            "bridge %s: outbox record %s dropped: %s", self.config.bridge_id, record.ref, reason
        )
        self.outbox.ack([record.ref])

    async def _flush(self, sender: AckedSender) -> None:
        """Hand the outbox to ``sender`` from the oldest record on, then each new one as it
        is appended; at most ``MAX_IN_FLIGHT`` records wait for their acknowledgement."""
        taken = -1  # the seq of the last record handed to the sender (seqs start at 0)
        while True:
            room = MAX_IN_FLIGHT - sender.pending
            batch = self.outbox.after(taken, min(self.flush_batch, room)) if room > 0 else []
            if not batch:
                if sender.pending and time.monotonic() - self._last_ack > STALL_S:
                    self.stats.kafka_up = False
                    self.stats.last_kafka_error = f"producer: {sender.last_error}"
                await asyncio.sleep(0.01)
                continue
            for record in batch:
                sender.submit(Outgoing(record.topic, record.value, record.key, ref=record))
            taken = batch[-1].seq

    async def _housekeeping(self) -> None:
        """Bulk outbox lane and acknowledged state to disk, old command ids purged: all in the
        disk thread (the event loop never waits for an fsync)."""
        every = max(0.05, self.config.outbox.fsync_interval_s)
        purge_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            try:
                await self.writer.sync(bulk=True)
                if loop.time() >= purge_at:
                    purge_at = loop.time() + 60.0
                    await self.writer.purge()
            except Exception:  # a disk error: logged; the next round tries again
                log.exception("bridge %s: housekeeping", self.config.bridge_id)
