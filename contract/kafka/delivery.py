"""Per-record acknowledged delivery: the one produce path of every service (issue 15).

:class:`AckedSender` sends :class:`Outgoing` records through one started ``AIOKafkaProducer``
(the project's: ``acks=all``, idempotent) and says, for each record, when *its* batch was
acknowledged:

- one *lane* per topic-partition, each with its own task and one batch on the wire at a
  time (``create_batch``/``send_batch``: the batch path, no per-record future): a partition
  without a leader, or whose leader froze, holds up only its own lane; every other partition
  keeps flowing;
- a lane's records reach the log in the order they were submitted; a failed batch puts only
  its own records back at the front of its lane (the bookkeeping is the pure
  :class:`~contract.kafka.ledger.DeliveryLedger`) and they are resent after a backoff
  through the same idempotent producer, so nothing acknowledged is ever sent again;
  aiokafka's idempotent producer retries a batch on the wire until it lands, and fails a
  batch only when its partition has had no leader for ``request_timeout_ms``;
- aiokafka 0.14 fails such a batch even after it had been given a sequence number (a retry
  re-queued while the leader was gone), and from then on the broker refuses the partition's
  later batches (``OutOfOrderSequenceNumber``): the producer is broken for that partition.
  So is one that was closed or fenced. Then, with a ``producer_factory``, the sender
  replaces the producer (new producer id, sequences from 0) and resends what was not
  acknowledged; the expired batch may have landed after all, so a record can then be in
  the log twice, with its original ``event_id``: readers deduplicate by event id (the
  archive does: ``analytics.archive.dedupe``). Without a factory the lane keeps retrying
  and says so in the log.

Callers either submit and are told through ``on_ack`` (the bridge's outbox: each record
marked delivered when its batch is acknowledged) or :meth:`AckedSender.deliver` a group and
wait for all of it (the streams worker's outputs, replay). :meth:`AckedSender.close` stops
within a bound and returns what was not acknowledged, for the caller to keep and name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# aiokafka ships no py.typed (unused-ignore: pyproject may list it later)
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    CorruptRecordException,
    IllegalStateError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    RecordTooLargeError,
    UnknownProducerId,
)
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped, unused-ignore]

from contract.kafka.ledger import DeliveryLedger

log = logging.getLogger(__name__)

Lane = tuple[str, int]
BROKEN_PRODUCER = (
    ProducerClosed,
    ProducerFenced,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    IllegalStateError,
)
# the broker refuses a record itself, whatever the retry: found by sending one at a time
RECORD_REFUSED = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
)


DEFAULT_MAX_REQUEST = 1024 * 1024  # aiokafka's max_request_size default (bytes)


def record_size(record: Outgoing) -> int:
    """Key, value and header bytes of a record (the batch adds a few dozen)."""
    headers = sum(len(k) + len(v or b"") for k, v in record.headers)
    return len(record.key or b"") + len(record.value or b"") + headers + 64


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to deliver. ``partition`` None: Kafka's default partitioner of ``key``
    (murmur2 over every partition, as aiokafka, Faust and the Java client pick). ``ref``
    is the caller's handle, given back on acknowledgement (e.g. an outbox record)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    ref: Any = None


@dataclass
class DeliveryCounts:
    """What a service's senders did, summed over their lives: the service keeps one and hands
    it to each sender it makes (a replaced sender's counts stay), and its ``/metrics`` read it
    (counters never go back while the process runs)."""

    acked: int = 0  #: records acknowledged by Kafka
    failed_batches: int = 0  #: batches Kafka did not acknowledge (their records resent)
    rejected: int = 0  #: records Kafka can never take (dropped, named in the log)
    replaced_producers: int = 0  #: broken producers replaced by a fresh one


class DeliveryError(Exception):
    """Records that were not acknowledged (``unacked``), and why."""

    def __init__(self, message: str, unacked: Sequence[Outgoing] = ()) -> None:
        super().__init__(message)
        self.unacked = list(unacked)


@dataclass(eq=False)
class _Ticket:
    """One :meth:`AckedSender.deliver` call: how many of its records are still out."""

    remaining: int
    future: asyncio.Future[list[Any]]
    metadata: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Entry:
    record: Outgoing
    ticket: _Ticket | None


class AckedSender:
    """Per-record acknowledged delivery through ``producer`` (see the module doc).

    ``on_ack(records)`` runs for each acknowledged batch (its records, in order);
    ``on_reject(record, reason)`` for a record that can never be sent (larger than a batch,
    a partition the topic does not have). ``producer_factory`` (optional) makes a started
    replacement when the producer breaks; without it the same producer is kept.
    ``counts``: where to count acknowledged, failed and rejected records (a service's one
    :class:`DeliveryCounts` over all its senders; a fresh one by default).
    """

    def __init__(
        self,
        producer: Any,
        *,
        name: str = "sender",
        on_ack: Callable[[list[Outgoing]], None] | None = None,
        on_reject: Callable[[Outgoing, str], None] | None = None,
        producer_factory: Callable[[], Any] | None = None,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        max_batch_records: int = 10_000,
        counts: DeliveryCounts | None = None,
    ) -> None:
        self.producer = producer
        self.counts = counts if counts is not None else DeliveryCounts()
        self.name = name
        self.on_ack = on_ack
        self.on_reject = on_reject
        self.producer_factory = producer_factory
        self.max_batch_records = max_batch_records
        self.ledger: DeliveryLedger[Lane, _Entry] = DeliveryLedger(backoff_s, max_backoff_s)
        self.last_error: str | None = None
        self.replaced_producers = 0
        self._partitions: dict[str, list[int]] = {}
        self._partitioner = DefaultPartitioner()
        self._unrouted: deque[_Entry] = deque()
        self._router_wake = asyncio.Event()
        self._lane_wake: dict[Lane, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._replacing: asyncio.Lock | None = None
        self._solo: dict[Lane, int] = {}  # records to send one by one (isolate a refused one)

    # ------------------------------------------------------------------ submit
    @property
    def pending(self) -> int:
        """Records not acknowledged yet (routed or not)."""
        return self.ledger.pending() + len(self._unrouted)

    def submit(self, record: Outgoing) -> None:
        """Queue ``record`` (never blocks; needs a running loop). Told through ``on_ack``."""
        self._submit(_Entry(record, None))

    def submit_all(self, records: Iterable[Outgoing]) -> int:
        n = 0
        for record in records:
            self._submit(_Entry(record, None))
            n += 1
        return n

    async def deliver(
        self, records: Sequence[Outgoing], timeout_s: float | None = None
    ) -> list[Any]:
        """Submit ``records`` and wait until every one was acknowledged; the
        ``RecordMetadata`` of the batches that carried them. DeliveryError after
        ``timeout_s`` (None: no limit) or when one can never be sent; records still out
        then stay queued (they may land later: at-least-once)."""
        if not records:
            return []
        ticket = _Ticket(len(records), asyncio.get_running_loop().create_future())
        for record in records:
            self._submit(_Entry(record, ticket))
        try:
            return await asyncio.wait_for(asyncio.shield(ticket.future), timeout_s)
        except TimeoutError:
            out = [e.record for e in self._entries() if e.ticket is ticket]
            raise DeliveryError(
                f"{self.name}: {len(out)} of {len(records)} records not acknowledged within "
                f"{timeout_s:g} s ({self.last_error or 'no error seen'})",
                out,
            ) from None

    def _submit(self, entry: _Entry) -> None:
        if self._closed:
            raise DeliveryError(f"{self.name} is closed", [entry.record])
        self._idle.clear()
        parts = self._partitions.get(entry.record.topic)
        if parts is None or self._unrouted:
            self._unrouted.append(entry)
            self._ensure_task("router", self._route_forever)
            self._router_wake.set()
        else:
            self._route(entry, parts)

    def _route(self, entry: _Entry, parts: list[int]) -> None:
        record = entry.record
        partition = record.partition
        if partition is None:
            partition = int(self._partitioner(record.key, parts, parts))
        elif partition not in parts:
            self._finish_rejected(
                entry, f"{record.topic} has no partition {partition} (it has {len(parts)})"
            )
            return
        lane = (record.topic, partition)
        self.ledger.add(lane, entry)
        wake = self._lane_wake.get(lane)
        if wake is None:
            wake = self._lane_wake[lane] = asyncio.Event()
        self._ensure_task(f"lane:{record.topic}[{partition}]", lambda: self._lane_forever(lane))
        wake.set()

    def _ensure_task(self, name: str, run: Callable[[], Any]) -> None:
        task = self._tasks.get(name)
        if task is None or task.done():
            self._tasks[name] = asyncio.get_running_loop().create_task(
                run(), name=f"{self.name}:{name}"
            )

    async def _route_forever(self) -> None:
        """Learn each new topic's partitions (a metadata round trip), then route."""
        while True:
            if not self._unrouted:
                self._router_wake.clear()
                await self._router_wake.wait()
                continue
            topic = self._unrouted[0].record.topic
            if topic not in self._partitions:
                try:
                    found = await self.producer.partitions_for(topic)
                except (KafkaError, OSError) as exc:
                    self._note_error(f"partitions of {topic}: {type(exc).__name__}: {exc}")
                    await asyncio.sleep(self.ledger.max_backoff_s)
                    continue
                self._partitions[topic] = sorted(int(p) for p in found)
            backlog, self._unrouted = self._unrouted, deque()
            for entry in backlog:  # in order; a topic still unknown waits its turn
                parts = self._partitions.get(entry.record.topic)
                if parts is None or self._unrouted:
                    self._unrouted.append(entry)
                else:
                    self._route(entry, parts)

    # -------------------------------------------------------------------- lanes
    async def _lane_forever(self, lane: Lane) -> None:
        loop = asyncio.get_running_loop()
        wake = self._lane_wake[lane]
        while True:
            state = self.ledger.state(lane)
            if state.waiting == 0:
                wake.clear()
                await wake.wait()
                continue
            now = loop.time()
            if state.retry_at > now:
                await asyncio.sleep(state.retry_at - now)
                continue
            try:
                await self._send_batch(lane)
            except Exception:  # a bug or an unforeseen error: logged, the lane goes on
                log.exception("%s: lane %s[%d]", self.name, *lane)
                await asyncio.sleep(self.ledger.max_backoff_s)

    async def _send_batch(self, lane: Lane) -> None:
        topic, partition = lane
        producer = self.producer
        first = self.ledger.peek(lane, 1)[0].record
        size = record_size(first)
        if size > getattr(producer, "_max_request_size", DEFAULT_MAX_REQUEST):
            # refused here, before it costs the partition's idempotent sequence
            entry = self.ledger.reject(lane)
            self._finish_rejected(entry, f"a record of {size} bytes exceeds max_request_size")
            return
        builder = producer.create_batch()
        count = 0
        limit = 1 if self._solo.get(lane) else self.max_batch_records
        for entry in self.ledger.peek(lane, limit):
            r = entry.record
            if (
                builder.append(
                    key=r.key, value=r.value, timestamp=r.timestamp_ms, headers=list(r.headers)
                )
                is None
            ):
                break
            count += 1
        if count == 0:
            entry = self.ledger.reject(lane)
            size = len(entry.record.value or b"") + len(entry.record.key or b"")
            self._finish_rejected(entry, f"a record of {size} bytes does not fit in a batch")
            return
        self.ledger.start(lane, count)
        builder.close()
        loop = asyncio.get_running_loop()
        try:
            future = await producer.send_batch(builder, topic, partition=partition)
            metadata = await future
        except asyncio.CancelledError:
            self.ledger.failed(lane, loop.time())  # closing: listed as not acknowledged
            raise
        except RECORD_REFUSED as exc:
            self._refused(lane, count, exc)
            return
        except Exception as exc:  # any failure: retry this batch only
            retry_at = self.ledger.failed(lane, loop.time())
            self.counts.failed_batches += 1
            self._note_error(f"{topic}[{partition}]: {type(exc).__name__}: {exc}")
            log.warning(
                "%s: %d record(s) for %s[%d] not acknowledged (%s: %s); resending in %.1f s",
                self.name,
                count,
                topic,
                partition,
                type(exc).__name__,
                exc,
                max(0.0, retry_at - loop.time()),
            )
            if isinstance(exc, BROKEN_PRODUCER) or _accumulator_failed(producer):
                await self._replace_producer(producer, exc)
            return
        if self._solo.get(lane):
            self._solo[lane] -= 1
        self._finish_acked(self.ledger.acked(lane), metadata)

    def _refused(self, lane: Lane, count: int, exc: BaseException) -> None:
        """The broker refused a batch for a record's own sake: alone, the record is
        rejected; in a batch, the batch's records go one by one to find it."""
        loop = asyncio.get_running_loop()
        self.ledger.failed(lane, loop.time())
        self.counts.failed_batches += 1
        if count > 1:
            self._solo[lane] = count
            return
        self._solo[lane] = max(0, self._solo.get(lane, 0) - 1)
        entry = self.ledger.reject(lane)
        self._finish_rejected(entry, f"refused by the broker: {type(exc).__name__}: {exc}")

    def _finish_acked(self, done: list[_Entry], metadata: Any) -> None:
        self.counts.acked += len(done)
        if self.on_ack is not None:
            try:
                self.on_ack([e.record for e in done])
            except Exception:  # a caller's bookkeeping bug must not kill the lane
                log.exception("%s: on_ack failed", self.name)
        for entry in done:
            self._ticket_done(entry.ticket, metadata, None)
        if not self.pending:
            self._idle.set()

    def _finish_rejected(self, entry: _Entry, reason: str) -> None:
        self.counts.rejected += 1
        log.error("%s: %s: record never sent: %s", self.name, entry.record.topic, reason)
        if self.on_reject is not None:
            try:
                self.on_reject(entry.record, reason)
            except Exception:
                log.exception("%s: on_reject failed", self.name)
        self._ticket_done(entry.ticket, None, reason)
        if not self.pending:
            self._idle.set()

    @staticmethod
    def _ticket_done(ticket: _Ticket | None, metadata: Any, error: str | None) -> None:
        if ticket is None:
            return
        ticket.remaining -= 1
        if error is not None:
            ticket.errors.append(error)
        elif not ticket.metadata or ticket.metadata[-1] is not metadata:
            ticket.metadata.append(metadata)
        if ticket.remaining == 0 and not ticket.future.done():
            if ticket.errors:
                ticket.future.set_exception(DeliveryError("; ".join(ticket.errors[:5])))
            else:
                ticket.future.set_result(ticket.metadata)

    def _note_error(self, text: str) -> None:
        self.last_error = text

    async def _replace_producer(self, broken: Any, exc: BaseException) -> None:
        if self.producer_factory is None or self.producer is not broken:
            return
        if self._replacing is None:
            self._replacing = asyncio.Lock()
        async with self._replacing:
            if self.producer is not broken:
                return  # another lane replaced it already
            log.warning("%s: producer broken (%s); starting a new one", self.name, exc)
            try:
                fresh = self.producer_factory()
                if asyncio.iscoroutine(fresh):
                    fresh = await fresh
            except Exception as failed:  # e.g. Kafka unreachable: the next failure tries again
                self._note_error(f"new producer: {type(failed).__name__}: {failed}")
                log.warning("%s: no new producer yet: %s", self.name, failed)
                return
            self.producer = fresh
            self.replaced_producers += 1
            self.counts.replaced_producers += 1
        asyncio.get_running_loop().create_task(stop_within(broken, 5.0))

    # -------------------------------------------------------------- draining
    def _entries(self) -> list[_Entry]:
        return [e for _, e in self.ledger.unacked()] + list(self._unrouted)

    def unacked(self) -> list[Outgoing]:
        """Every record submitted and not acknowledged (yet), lane by lane in order."""
        return [e.record for e in self._entries()]

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every submitted record was acknowledged; False at ``timeout_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self, drain_s: float = 0.0) -> list[Outgoing]:
        """Wait up to ``drain_s`` for what is pending, stop every task, and return the
        records not acknowledged (the caller keeps them; the producer is the caller's)."""
        if drain_s > 0:
            await self.drain(drain_s)
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        out = self.unacked()
        for entry in self._entries():
            if entry.ticket is not None and not entry.ticket.future.done():
                entry.ticket.future.set_exception(
                    DeliveryError(f"{self.name} closed with records out", [entry.record])
                )
        return out


def _accumulator_failed(producer: Any) -> bool:
    """aiokafka fails every later send after a fatal producer error (``fail_all``)."""
    accumulator = getattr(producer, "_message_accumulator", None)
    return getattr(accumulator, "_exception", None) is not None


async def stop_within(client: Any, timeout_s: float) -> bool:
    """Stop an aiokafka producer or consumer within ``timeout_s`` even with Kafka gone.

    A producer's ``stop()`` waits for every queued batch to be delivered, a consumer's for
    its group to be left: with the brokers frozen or gone that wait has no end. Past the
    bound the producer's sender task is cancelled and every connection of the client closed
    (what it held is the caller's to keep: an outbox, a redelivered input). True when it
    stopped by itself."""
    stop = asyncio.ensure_future(client.stop())
    done, _ = await asyncio.wait({stop}, timeout=timeout_s)
    if done:
        with contextlib.suppress(Exception):
            stop.result()
        return True
    sender = getattr(client, "_sender", None)  # a producer's
    tasks = [getattr(sender, "sender_task", None)]
    coordinator = getattr(client, "_coordinator", None)  # a consumer's
    tasks += [
        getattr(coordinator, name, None)
        for name in ("_coordination_task", "_heartbeat_task", "_commit_refresh_task")
    ]
    for task in tasks:
        if isinstance(task, asyncio.Future):
            task.cancel()
    stop.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await stop
    fetcher = getattr(client, "_fetcher", None)  # a consumer's fetch task holds connections
    if fetcher is not None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(fetcher.close(), 1.0)
    await force_close(getattr(client, "client", None) or getattr(client, "_client", None))
    # what the client's own stop started and could not end (the producer's accumulator
    # close, the sender's in-flight produce requests, which its cancelled routine awaits)
    await _end_tasks_of(client, sender, getattr(client, "_message_accumulator", None))
    return False


async def _end_tasks_of(*owners: Any, timeout_s: float = 1.0) -> None:
    """Cancel every task running a method of one of ``owners`` and wait (bounded) for them:
    none is left pending on a loop that is about to close."""
    ids = {id(owner) for owner in owners if owner is not None}
    me = asyncio.current_task()
    tasks = []
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if task is not me and frame is not None and id(frame.f_locals.get("self")) in ids:
            task.cancel()
            tasks.append(task)
    if tasks:
        await asyncio.wait(tasks, timeout=timeout_s)


async def finish(cleanup: Coroutine[Any, Any, Any]) -> None:
    """Run a bounded ``cleanup`` to its end even while the calling task is being cancelled
    again and again (a service's stop cancels its tasks every half second): a client
    stopped half way would leave its sockets open. The caller's own cancellation still
    propagates once its ``finally`` is done."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    with contextlib.suppress(Exception):
        task.result()


async def force_close(kafka_client: Any) -> None:
    """Close an ``AIOKafkaClient``'s connections now, without waiting on any broker: its
    metadata task cancelled (a connection it was opening closes itself), then every
    connection's socket closed."""
    if kafka_client is None:
        return
    sync = getattr(kafka_client, "_sync_task", None)
    if sync is not None:
        sync.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(sync, 1.0)
        kafka_client._sync_task = None
    for conn in list(getattr(kafka_client, "_conns", {}).values()):
        with contextlib.suppress(Exception):
            conn.close()
