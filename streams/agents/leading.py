"""One term of the fleet leader: take over from Kafka, merge the inputs, transact the outputs.

:class:`Leading` is what the elected worker runs (``leader``):

1. **Fence**: start the transactional producer (``<app_id>-leader``): the previous
   leader's producer is fenced and its open transaction aborted.
2. **Restore** from Kafka, not from any worker's memory: the last committed snapshot on
   ``<app_id>-leader-state`` (compacted; key ``core``: the clock, the next re-split, the
   windows emitted, live compliance's obligations and the offsets of the fleet requests
   taken; key ``allocations``: the split per product, written when it changes), then the
   inputs: the fleet requests from exactly the offsets the snapshot names (each taken once),
   the partitions' slices and the command results from ``lookback_s`` before the snapshot's
   clock (the sites' availability and derating, and the windows not yet emitted). No
   telemetry round is waited for and no share is re-sent: the split is the snapshot's, and
   re-split only where the book asks for it.
3. **Lead**: every input in event-time order (``steps.event_time``: slices by their
   window's close, fleet requests and command results by their event time) through
   ``steps.leader_core``; after each ``getmany``, the outputs and the new snapshot in one
   transaction (FleetStates to ``fleet.state``, setpoints to ``site.setpoints``, verdicts
   to ``compliance.verdicts``, dead letters). A crash before the commit leaves nothing
   visible to ``read_committed`` readers; the next leader redoes the work from the last
   snapshot.

The leader's outputs do not go through the per-record acknowledged sender of the other
producers (``contract.kafka.delivery``): the transaction is their acknowledgement. Its
commit returns only once every record of it was acknowledged, and a transaction that fails
(a batch that cannot land, a fenced producer) is aborted as a whole: no reader sees any of
it, the lead ends, and the next one redoes the work from the last committed snapshot. So
nothing is lost and nothing is written twice, where resending a failed batch on its own (as
the sender does) would break the all-or-nothing. The setpoints of a fan-out go in
per-partition batches (aiokafka's ``create_batch``/``send_batch``, the same murmur2
partition as a keyed send); the stop of a lead is bounded (``CLIENT_STOP_S`` per client).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import faust

# aiokafka ships no type information
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]

from contract.codec import decode_raw, encode
from contract.errors import InvalidEventError
from contract.kafka import clients
from contract.kafka.delivery import Outgoing, stop_within
from contract.topics import topic as topic_row
from streams.agents.batching import murmur2_partition
from streams.agents.groups import caught_up, slices_topic, wall_micros
from streams.settings import StreamsSettings
from streams.steps import slices
from streams.steps.allocation import Allocation
from streams.steps.deadletter import dead_letter_of
from streams.steps.event_time import EventMerge, SourceKind
from streams.steps.leader_core import FLEET_EVENTS, LeaderConfig, LeaderCore, LeaderOutput
from streams.steps.plain import branch_encoder

log = logging.getLogger(__name__)

NAME = "fleet-leader"
#: the log line of a lead that began (tests and the demo's supervisor read it)
LEADING_LINE = "fleet leader: leading"
POLL_MS = 100
MAX_RECORDS = 20_000
READ_TIMEOUT_S = 30.0
CLIENT_STOP_S = 2.0
ENDS_EVERY_S = 0.2  # the telemetry partitions' ends asked again after this
#: the fleet requests, in the order they are taken at the same instant
FLEET_TOPICS = ("reserve.assignments", "market.activations", "market.fleet-setpoints")
_SLICE, _RESULT, _FLEET = "slice", "result", "fleet"


def election_topic(settings: StreamsSettings) -> str:
    return f"{settings.app_id}-leader"


def state_topic(settings: StreamsSettings) -> str:
    return f"{settings.app_id}-leader-state"


def transactional_id(settings: StreamsSettings) -> str:
    return f"{settings.app_id}-leader"


def leader_config(settings: StreamsSettings) -> LeaderConfig:
    agg = settings.aggregation
    return LeaderConfig(
        fleet_id=settings.fleet_id,
        windows_s=tuple(agg.windows_s),
        grace_us=round(agg.grace_s * 1_000_000),
        allocator=settings.allocator.to_config(),
        compliance=settings.compliance.to_config(),
    )


class Leading:
    """One term of the lead (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        settings: StreamsSettings,
        *,
        partitions: int | None = None,
        dead_letters: Counter[tuple[str, str]] | None = None,
    ) -> None:
        self.app = app
        #: dead letters committed, by (consumer, error type) (the worker's, over its leads)
        self.dead_letters: Counter[tuple[str, str]] = (
            dead_letters if dead_letters is not None else Counter()
        )
        #: the inputs' positions after the last fetch, by ``TopicPartition`` (lag)
        self.positions: dict[Any, int] = {}
        self.settings = settings
        self.transactional_id = transactional_id(settings)
        self.active = True
        self.core = LeaderCore(leader_config(settings))
        self.merge = EventMerge(round(settings.workers.hold_s * 1_000_000), wall_micros)
        self.partitions = partitions
        self.offsets: dict[str, int] = {}  # fleet request "topic:partition" -> next offset
        self.started = time.monotonic()
        self.restored_at: float | None = None
        self.first_output_at: float | None = None
        self.states_sent = 0
        self.setpoints_sent = 0
        self.verdicts_sent = 0
        self.transactions = 0
        #: CPU seconds of decoding and the core's steps (not of the Kafka clients)
        self.cpu_s = 0.0
        self._late_logged = 0
        self._producer: Any = None
        self._consumer: Any = None
        self._partition_of: dict[bytes, int] = {}  # setpoint key -> partition (murmur2)
        self._encode_setpoint = branch_encoder("SiteSetpoint")
        self._open: list[tuple[str, int | None]] = []  # the open transaction's records
        self._sources: dict[Any, tuple[str, Any]] = {}  # TopicPartition -> (kind, merge key)
        self._written_allocations: object | None = None
        self._offsets_dirty = False
        self._telemetry: list[Any] = []  # the telemetry partitions (their ends)
        self._ends_at = -ENDS_EVERY_S

    def _count(self, name: str) -> int:
        return self.partitions or topic_row(name).partitions

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        settings = self.settings
        producer = clients.producer(
            settings,
            transactional_id=self.transactional_id,
            client_id=self.transactional_id,
            linger_ms=2,
            max_batch_size=512 * 1024,
            compression_type="gzip",
        )
        await clients.start(producer, settings)  # InitProducerId: fences the previous leader
        self._producer = producer
        await self._restore()
        self.restored_at = time.monotonic()
        log.warning(
            "%s (previous leader fenced; restored in %.2f s: clock %s, "
            "%d allocation(s), windows emitted to %s)",
            LEADING_LINE,
            self.restored_at - self.started,
            self.core.clock,
            len(self.core.allocations.by_slot),
            self.core.emitted,
        )
        while self.active:
            batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
            cpu = time.process_time()
            letters = self._ingest(batches)
            self.cpu_s += time.process_time() - cpu
            await self._note_fetched(
                any(self._sources[tp][0] == _SLICE and records for tp, records in batches.items())
            )
            cpu = time.process_time()
            out = self._step(letters)
            self.cpu_s += time.process_time() - cpu
            if out or letters or self.core.dirty or self._offsets_dirty:
                await self._transact(out, letters)

    async def close(self) -> None:
        log.warning(
            "fleet leader: lead over: %d FleetState(s), %d setpoint(s), %d verdict(s) in %d "
            "transaction(s), %d late slice(s), %d input(s) taken late, %.3f CPU s merging",
            self.states_sent,
            self.setpoints_sent,
            self.verdicts_sent,
            self.transactions,
            self.core.late_slices,
            self.merge.late,
            self.cpu_s,
        )
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        # both at once, each within its bound (an open transaction: the next leader aborts it)
        await asyncio.gather(
            *(stop_within(c, CLIENT_STOP_S) for c in (consumer, producer) if c is not None)
        )

    @property
    def consumer(self) -> Any:
        """The inputs' consumer (no group: the positions are the lead's own) while leading."""
        return self._consumer

    def unacked(self) -> list[Outgoing]:
        """The records of the transaction in progress (none between transactions)."""
        return [Outgoing(topic, None, None, partition) for topic, partition in self._open]

    # ------------------------------------------------------------------ restore
    async def _restore(self) -> None:
        settings = self.settings
        snapshot = await self._read_snapshot()
        if snapshot is not None:
            self.core.restore(snapshot)
            offsets = snapshot.get("offsets", {})
            if isinstance(offsets, Mapping):
                self.offsets = {str(k): int(v) for k, v in offsets.items()}
        self._written_allocations = self.core.allocations
        consumer = clients.consumer(
            settings,
            group_id=None,
            client_id=f"{self.transactional_id}-inputs",
            isolation_level="read_committed",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await clients.start(consumer, settings)
        self._consumer = consumer
        tps: list[Any] = []
        merge = self.merge
        self._telemetry = [
            TopicPartition(settings.topic("site.telemetry"), p)
            for p in range(self._count("site.telemetry"))
        ]
        for p in range(self._count("site.telemetry")):
            tp = TopicPartition(slices_topic(settings), p)
            self._sources[tp] = (_SLICE, (_SLICE, p))
            merge.add_source((_SLICE, p), 0, SourceKind.PROGRESS)
            tps.append(tp)
        for p in range(self._count("site.command-results")):
            tp = TopicPartition(settings.topic("site.command-results"), p)
            self._sources[tp] = (_RESULT, (_RESULT, p))
            merge.add_source((_RESULT, p), 1, SourceKind.EVENTS)
            tps.append(tp)
        for rank, name in enumerate(FLEET_TOPICS, start=2):
            for p in range(self._count(name)):
                tp = TopicPartition(settings.topic(name), p)
                self._sources[tp] = (_FLEET, (_FLEET, name, p))
                merge.add_source((_FLEET, name, p), rank, SourceKind.EVENTS)
                tps.append(tp)
        consumer.assign(tps)
        await self._seek(tps)

    async def _seek(self, tps: list[Any]) -> None:
        consumer = self._consumer
        lookback = round(self.settings.workers.lookback_s * 1_000_000)
        since = self.core.resume_from(lookback)
        timed = [tp for tp in tps if self._sources[tp][0] != _FLEET]
        fleet = [tp for tp in tps if self._sources[tp][0] == _FLEET]
        if since is None:
            await consumer.seek_to_beginning(*timed)
        else:
            found = await consumer.offsets_for_times({tp: max(since, 0) // 1000 for tp in timed})
            ends = await consumer.end_offsets(timed)
            for tp in timed:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else ends[tp])
        begins = await consumer.beginning_offsets(fleet) if fleet else {}
        for tp in fleet:
            at = self.offsets.get(f"{tp.topic}:{tp.partition}")
            consumer.seek(tp, max(at, begins[tp]) if at is not None else begins[tp])

    async def _read_snapshot(self) -> dict[str, Any] | None:
        """The latest committed ``core`` and ``allocations`` records, merged (None: none)."""
        tp = TopicPartition(state_topic(self.settings), 0)
        consumer = clients.consumer(
            self.settings,
            group_id=None,
            client_id=f"{self.transactional_id}-state",
            isolation_level="read_committed",
        )
        latest: dict[bytes, bytes | None] = {}
        async with clients.running(consumer, self.settings):
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
            while await consumer.position(tp) < end:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{tp.topic} not read to its end in {READ_TIMEOUT_S:g} s")
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if record.key is not None:
                        latest[record.key] = record.value
        core = latest.get(b"core")
        if core is None:
            return None
        data = json.loads(core)
        allocations = latest.get(b"allocations")
        data["allocations"] = json.loads(allocations) if allocations else {}
        return dict(data)

    # ------------------------------------------------------------------ inputs
    def _ingest(self, batches: Mapping[Any, list[Any]]) -> list[dict[str, Any]]:
        """Decode and buffer a ``getmany`` result; dead letters of what does not decode."""
        merge = self.merge
        letters: list[dict[str, Any]] = []
        stamp = time.time_ns() // 1000
        grace = self.core.config.grace_us
        for tp, records in batches.items():
            kind, key = self._sources[tp]
            for record in records:
                try:
                    if kind == _SLICE:
                        decoded = slices.decode(record.value)
                        progress = decoded.progress
                        if decoded.slice is not None:
                            ts = slices.close_time(decoded.slice, grace)
                            merge.push(key, ts, (kind, decoded.slice, record))
                        merge.set_progress(
                            key, progress.clock, idle=progress.idle, offset=progress.offset
                        )
                        continue
                    value = record.value
                    if not isinstance(value, bytes):
                        raise InvalidEventError("no value (tombstone)")
                    event = decode_raw(value)
                    expected = FLEET_EVENTS if kind == _FLEET else frozenset({"CommandResult"})
                    if event.name not in expected:
                        raise InvalidEventError(
                            f"{event.name} does not belong on {record.topic} "
                            f"(expected {', '.join(sorted(expected))})"
                        )
                    ts = event.record["event_time"]
                    merge.push(key, ts, (kind, (event.name, event.record), record))
                except Exception as exc:  # bad input: a dead letter, never fatal
                    letters.append(dead_letter_of(record, exc, NAME, stamp))
                    if kind == _FLEET:
                        self._taken(record)
        return letters

    async def _note_fetched(self, slices_came: bool) -> None:
        consumer = self._consumer
        for tp, (_, key) in self._sources.items():
            at = await caught_up(consumer, tp)
            self.positions[tp] = at if at is not None else await consumer.position(tp)
            self.merge.fetched(key, caught_up=at is not None)
        await self._note_telemetry_ends(force=slices_came)

    async def _note_telemetry_ends(self, *, force: bool) -> None:
        """The telemetry partitions' ends (last stable offsets): a partition whose owner
        says idle counts as idle only once it has read to the end (a backlog committed after
        the owner said so: its slices are still to come). Asked after every fetch that
        brought slices, before they are merged (a slice read means its telemetry was
        committed before this request: the request sees every partition's share of the
        same backlog), and at least every ``ENDS_EVERY_S``."""
        now = time.monotonic()
        if not force and now - self._ends_at < ENDS_EVERY_S:
            return
        self._ends_at = now
        ends = await self._consumer.end_offsets(self._telemetry)
        for tp, end in ends.items():
            self.merge.set_end((_SLICE, tp.partition), int(end))

    def _taken(self, record: Any) -> None:
        self.offsets[f"{record.topic}:{record.partition}"] = record.offset + 1
        self._offsets_dirty = True

    def _step(self, letters: list[dict[str, Any]]) -> LeaderOutput:
        """Every input the merge lets through, then time up to what is safe."""
        core, merge = self.core, self.merge
        out = LeaderOutput()
        stamp = time.time_ns() // 1000
        while (item := merge.pop()) is not None:
            ts, (kind, payload, record) = item
            out.extend(core.advance(ts - 1))
            if kind == _SLICE:
                core.handle_slice(payload)
                continue
            try:
                if kind == _RESULT:
                    core.handle_result(payload[1])
                else:
                    name, data = payload
                    out.extend(core.handle_fleet(name, data, ts))
            except Exception as exc:  # bad input (EventError) or a step bug: never fatal
                letters.append(dead_letter_of(record, exc, NAME, stamp))
            finally:
                if kind == _FLEET:
                    self._taken(record)
            if merge.late > self._late_logged:
                self._late_logged = merge.late
                log.warning(
                    "fleet leader: %s[%d]@%d taken late: its event time %d is before the "
                    "fleet's %d (it came more than %.1f s after it); a replay of the log may "
                    "take it earlier",
                    record.topic,
                    record.partition,
                    record.offset,
                    ts,
                    merge.stream_time or 0,
                    merge.hold / 1e6,
                )
        out.extend(core.advance(merge.safe_time()))
        return out

    # ------------------------------------------------------------------ outputs
    async def _transact(self, out: LeaderOutput, letters: list[dict[str, Any]]) -> None:
        settings, producer = self.settings, self._producer
        fleet_key = settings.fleet_id.encode()
        for allocation in out.allocations:
            _log_allocation(allocation)
        self._open = [
            *[(settings.topic("fleet.state"), None)] * len(out.states),
            *[(settings.topic("compliance.verdicts"), None)] * len(out.verdicts),
            *[(settings.topic("deadletter"), None)] * len(letters),
        ]
        async with producer.transaction():
            futures: list[Any] = [
                await producer.send(
                    settings.topic("fleet.state"),
                    encode("FleetState", state.to_record()),
                    key=fleet_key,
                )
                for state in out.states
            ]
            if out.setpoints:
                futures += await self._send_batches(
                    settings.topic("site.setpoints"),
                    self._count("site.setpoints"),
                    [(sp.site_id.encode(), sp.to_record()) for sp in out.setpoints],
                )
            for verdict in out.verdicts:
                futures.append(
                    await producer.send(
                        settings.topic("compliance.verdicts"),
                        encode("ComplianceVerdict", verdict.to_record()),
                        key=fleet_key,
                    )
                )
            for letter in letters:
                futures.append(
                    await producer.send(
                        settings.topic("deadletter"),
                        encode("DeadLetter", letter),
                        key=letter["key"],
                    )
                )
            futures += await self._send_snapshot()
            await asyncio.gather(*futures)
        self._open = []
        for letter in letters:
            self.dead_letters[(str(letter["consumer"]), str(letter["error_type"]))] += 1
            log.warning(
                "%s: %s[%d]@%d -> deadletter: %s: %s",
                NAME,
                letter["source_topic"],
                letter["partition"],
                letter["offset"],
                letter["error_type"],
                letter["reason"],
            )
        self.transactions += 1
        self.states_sent += len(out.states)
        self.setpoints_sent += len(out.setpoints)
        self.verdicts_sent += len(out.verdicts)
        if self.first_output_at is None and (out.states or out.setpoints):
            self.first_output_at = time.monotonic()
            log.warning(
                "fleet leader: first output of this lead %.2f s after it began (%d "
                "FleetState(s), %d setpoint(s))",
                self.first_output_at - self.started,
                len(out.states),
                len(out.setpoints),
            )

    async def _send_batches(
        self, topic: str, partitions: int, pairs: list[tuple[bytes, Mapping[str, Any]]]
    ) -> list[Any]:
        """Keyed SiteSetpoint records (``to_record`` form) in one batch per partition (more
        when one fills up): the futures of the batches (the transaction's commit waits for
        them anyway). Encoded a partition at a time, the event loop let run after each
        (a fan-out of 30,000 takes a third of a second to encode: the group heartbeats and
        the batches already queued go out meanwhile)."""
        producer, partition_of = self._producer, self._partition_of
        encode_setpoint = self._encode_setpoint
        by_partition: dict[int, list[tuple[bytes, Mapping[str, Any]]]] = {}
        for key, record in pairs:
            part = partition_of.get(key)
            if part is None:
                part = partition_of[key] = murmur2_partition(key, partitions)
            by_partition.setdefault(part, []).append((key, record))
        futures: list[Any] = []
        for part, records in by_partition.items():
            self._open += [(topic, part)] * len(records)
            batch = producer.create_batch()
            for key, record in records:
                value = encode_setpoint(record)
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=part))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record of {len(value)} bytes fits in no batch")
            futures.append(await producer.send_batch(batch, topic, partition=part))
            await asyncio.sleep(0)
        return futures

    async def _send_snapshot(self) -> list[Any]:
        core = self.core
        if not (core.dirty or self._offsets_dirty):
            return []
        producer, topic = self._producer, state_topic(self.settings)
        data = core.snapshot()
        allocations = data.pop("allocations")
        data["offsets"] = dict(sorted(self.offsets.items()))
        futures = [
            await producer.send(topic, _json(data), key=b"core", partition=0),
        ]
        if core.allocations is not self._written_allocations:
            futures.append(
                await producer.send(topic, _json(allocations), key=b"allocations", partition=0)
            )
            self._written_allocations = core.allocations
        self._offsets_dirty = False
        return futures


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def _log_allocation(allocation: Allocation) -> None:
    report = allocation.report()
    if abs(allocation.shortfall_kw) > 0:
        log.warning("allocation short of target: %s", report)
    else:
        log.info("allocation: %s", report)
