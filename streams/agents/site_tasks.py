"""Per-site work on the worker that owns the site's partition: telemetry and the filter.

Every worker runs :class:`SiteTasks`: one aiokafka consumer in the group
``<app_id>-sites``, subscribed to ``site.telemetry`` and ``site.setpoints`` with Kafka's
range assignor, so partition p of both topics (both keyed by ``site_id``, the same count)
goes to the same worker: N workers share the partitions, and a worker that dies or leaves
hands its partitions to the others after the group's session timeout
(``settings.workers.session_timeout_s``).

Per owned partition p:

- telemetry p -> :class:`~streams.steps.site_partition.PartitionTelemetry` (decode,
  per-partition stream time and windows) -> its closed windows' slices and its progress to
  the internal topic ``<app_id>-site-slices``, partition p (record timestamp: the slice's
  close, or the progress' stream time), for the leader (``leader``);
- setpoints p -> :class:`~streams.steps.filter_partition.FilterPartition` (the filter in
  the partition's event time, limits as of the setpoint from telemetry p) ->
  ``site.commands``; its state in the changelog (``filter_store``; every worker keeps a warm
  standby copy of the partitions it does not own).

Per ``getmany`` (at most ``MAX_RECORDS``): fold and filter, then make the due writes and
write a watermark into each silent partition (its windows close when it is read back:
``steps.site_partition``); send the slices, progress, commands and dead
letters and wait for Kafka's acknowledgements; then write the changed filter states to
the changelog and wait again; only then commit the offsets (telemetry: the partition's
low-water offset, the first record an open window may still need; setpoints: after the
last record filtered). A crash anywhere in between repeats outputs when the records are
read again, with the same ids (slices per partition and window, command ids uuid5(site,
setpoint), dead letters per topic/partition/offset): the leader merges a repeated slice
into the same window, the edge bridge applies a command id once.

A rebalance waits for the batch in hand (``on_partitions_revoked`` takes the same lock),
then drops the partitions given up (the standby copy tails their changelog again); a new
partition is restored first (``on_partitions_assigned``): telemetry from the last progress
its previous owner published and the group's committed offset, the filter from the standby
copy read to the changelog's end. Back from a freeze past the session timeout, a worker
writes nothing until the group confirms it still owns its partitions (``groups``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import faust

# aiokafka ships no type information
from aiokafka.abc import ConsumerRebalanceListener  # type: ignore[import-untyped, unused-ignore]
from aiokafka.coordinator.assignors.range import (  # type: ignore[import-untyped, unused-ignore]
    RangePartitionAssignor,
)
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    CommitFailedError,
    IllegalStateError,
    InvalidSessionTimeoutError,
    KafkaError,
    RebalanceInProgressError,
)
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]
from mode import Service

from contract.codec import encode
from contract.kafka import clients
from contract.kafka.delivery import AckedSender, DeliveryCounts, Outgoing, stop_within
from contract.topics import topic as topic_row
from streams.agents.filter_store import ChangelogStandby, changelog_entry
from streams.agents.groups import (
    caught_up,
    expelled,
    group_id,
    session_timeout_refused,
    slices_topic,
    still_member,
    wall_micros,
)
from streams.agents.site_clock import PartitionClocks, last_progress
from streams.agents.site_work import (
    CycleBatch,
    OwnedFilter,
    OwnedTelemetry,
    describe_partitions,
    no_limits,
)
from streams.settings import StreamsSettings
from streams.steps import slices
from streams.steps.filter_partition import FilterOutcome, FilterPartition
from streams.steps.plain import branch_encoder
from streams.steps.setpoint_filter import FilterReason
from streams.steps.site_partition import WATERMARK_EVENT, PartitionTelemetry, watermark_record

log = logging.getLogger(__name__)

NAME = "site-tasks"
MAX_RECORDS = 20_000
#: a setpoints batch this long lets the loop run after it (30,000 can outlast the session)
YIELD_AFTER = 500
POLL_MS = 100
#: at a stop: the batch in hand, then the outputs' acknowledgements and every client at once
#: (the worker's whole stop is bounded by ``streams.shutdown.WORKER_STOP_S``)
STOP_TIMEOUT_S = 3.0
DRAIN_S = 2.0
CLIENT_STOP_S = 2.0
#: a partition's progress is published at least this often (wall seconds) while it moves
PROGRESS_EVERY_S = 0.2


class SiteTasks(Service, ConsumerRebalanceListener):  # type: ignore[misc]  # untyped bases
    """The per-site work of one worker (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        settings: StreamsSettings,
        *,
        partitions: int | None = None,
        wall: Any = wall_micros,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.settings = settings
        self.wall = wall
        self.telemetry_topic = settings.topic("site.telemetry")
        self.setpoints_topic = settings.topic("site.setpoints")
        self.slices_topic = slices_topic(settings)
        self.partitions = partitions or topic_row("site.setpoints").partitions
        agg = settings.aggregation
        self.windows_s = tuple(agg.windows_s)
        self.grace_s = agg.grace_s
        self.idle_s = agg.idle_s
        self.clocks = PartitionClocks(self.windows_s, self.partitions, self._read_progress)
        self.filter_config = settings.filter.to_config()
        self.encode_command = branch_encoder("SiteCommand")  # raw codec, reserve union named
        self.filter_hold = round(settings.filter.hold_s * 1_000_000)
        self.owned: dict[int, OwnedTelemetry] = {}
        self.filters: dict[int, OwnedFilter] = {}
        self.standby = ChangelogStandby(settings, self.partitions)
        self.cycles = 0  #: cycles done (outputs acknowledged, commit attempted)
        self.records = 0
        self.commands_sent = 0
        self.late_logged = 0
        # plain counts, read by ``streams.metrics`` when Prometheus scrapes; each counted
        # once the cycle's outputs were acknowledged
        #: what the filter did with each setpoint, by reason
        self.reasons: Counter[FilterReason] = Counter()
        #: dead letters sent, by (consumer, error type)
        self.dead_letters: Counter[tuple[str, str]] = Counter()
        #: records read and done (outputs acknowledged, commit attempted), by topic
        self.records_done: Counter[str] = Counter()
        #: the offsets this worker committed, by ``TopicPartition`` (its lag)
        self.committed: dict[Any, int] = {}
        #: telemetry records dropped as late over this worker's life (every partition it
        #: owned); ``late`` counts the partitions owned now
        self.late_total = 0
        self._late_seen: dict[int, int] = {}
        #: the outputs' delivery over every producer the sender had
        self.delivery = DeliveryCounts()
        #: CPU seconds of the folding and filtering (not of the Kafka clients), for the bench
        self.cpu_s = 0.0
        self._consumer: Any = None
        self._probe: Any = None  # reads the last progress of the slices topic's partitions
        self._sender: AckedSender | None = None  # every output, acknowledged per record
        self.commands_topic = settings.topic("site.commands")
        self.deadletter_topic = settings.topic("deadletter")
        self._lock = asyncio.Lock()
        self._polled = time.monotonic()  # a poll it was surely a group member at
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        Service.__init__(self, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        settings = self.settings
        self._sender = AckedSender(
            await self._started_producer(),
            name=f"{group_id(settings)} outputs",
            producer_factory=self._started_producer,
            counts=self.delivery,
        )
        await self.standby.start()
        self._probe = clients.consumer(settings, group_id=None, client_id=self.slices_topic)
        await clients.start(self._probe, settings)
        workers = settings.workers
        consumer = clients.consumer(
            settings,
            group_id=group_id(settings),
            client_id=group_id(settings),
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=round(workers.session_timeout_s * 1000),
            heartbeat_interval_ms=round(workers.heartbeat_interval_s * 1000),
            isolation_level="read_committed",
            fetch_max_wait_ms=100,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await clients.start(consumer, settings)
        consumer.subscribe([self.telemetry_topic, self.setpoints_topic], listener=self)
        self._consumer = consumer
        self._task = asyncio.ensure_future(self._run())

    async def _started_producer(self) -> Any:
        """The outputs' producer (acks=all, idempotent; per-partition batches of a fan-out
        up to 512 KiB), made again by the sender when its sequence breaks."""
        settings = self.settings
        producer = clients.producer(
            settings, linger_ms=2, max_batch_size=512 * 1024, client_id=group_id(settings)
        )
        await clients.start(producer, settings)
        return producer

    def unacked(self) -> list[Outgoing]:
        """Outputs sent and not acknowledged yet (the stop watchdog names them)."""
        return [] if self._sender is None else self._sender.unacked()

    async def on_stop(self) -> None:
        """Bounded whatever Kafka does: the batch in hand up to ``STOP_TIMEOUT_S``, the
        outputs' acknowledgements up to ``DRAIN_S``, each client up to ``CLIENT_STOP_S``.
        Inputs whose outputs were not acknowledged are not committed: read again."""
        self._closing = True
        log.warning(
            "%s: stopping: %d record(s) read, %d command(s) sent, %d late telemetry "
            "record(s) dropped, %.3f CPU s folding and filtering",
            NAME,
            self.records,
            self.commands_sent,
            self.late_total,
            self.cpu_s,
        )
        task, self._task = self._task, None
        if task is not None and not task.done():
            _, pending = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
            if pending:
                log.warning("%s: the batch in hand did not finish in %g s", NAME, STOP_TIMEOUT_S)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        consumer, self._consumer = self._consumer, None
        probe, self._probe = self._probe, None
        # every client at once, each within its bound (Kafka may be frozen)
        await asyncio.gather(
            self._close_sender(),
            self.standby.stop(),
            *(stop_within(c, CLIENT_STOP_S) for c in (consumer, probe) if c is not None),
        )  # the consumer leaves the group: the others take over its partitions now

    async def _close_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is None:
            return
        left = await sender.close(drain_s=DRAIN_S)
        await stop_within(sender.producer, CLIENT_STOP_S)
        if left:
            log.warning(
                "%s: stopped with %d output(s) not acknowledged; their inputs were not "
                "committed and are read again",
                NAME,
                len(left),
            )

    # ------------------------------------------------------------------ rebalance
    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        async with self._lock:
            for tp in revoked:
                if tp.topic == self.telemetry_topic and tp.partition in self.owned:
                    self._note_late()
                    del self.owned[tp.partition]
                    self._late_seen.pop(tp.partition, None)
                elif tp.topic == self.setpoints_topic and tp.partition in self.filters:
                    del self.filters[tp.partition]
                    self.standby.give_back(tp.partition)
            if revoked:
                log.warning(
                    "%s: gave up %s", NAME, describe_partitions(revoked, self.telemetry_topic)
                )

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        async with self._lock:
            began = time.monotonic()
            tps = list(assigned)
            telemetry = [
                tp
                for tp in tps
                if tp.topic == self.telemetry_topic and tp.partition not in self.owned
            ]
            if telemetry:
                await self._restore_telemetry(telemetry)
            filters = [
                tp.partition
                for tp in tps
                if tp.topic == self.setpoints_topic and tp.partition not in self.filters
            ]
            if filters:
                await self._restore_filters(filters)
            if tps:
                log.warning(
                    "%s: now owns %s (restored in %.2f s)",
                    NAME,
                    describe_partitions(tps, self.telemetry_topic),
                    time.monotonic() - began,
                )

    async def _restore_telemetry(self, tps: list[Any]) -> None:
        """New telemetry partitions: each from its last published progress and the group's
        committed offset (see the module doc)."""
        consumer = self._consumer
        progress = await last_progress(self._probe, self.slices_topic, [tp.partition for tp in tps])
        begins = await consumer.beginning_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                committed = begins[tp]
            part = PartitionTelemetry(tp.partition, self.windows_s, self.grace_s, self.idle_s)
            last = progress.get(tp.partition)
            part.restore(last, committed)
            self.owned[tp.partition] = OwnedTelemetry(part, self.wall())
            if last is not None:
                log.info(
                    "%s: telemetry[%d] resumes at offset %d after the last progress (offset "
                    "%d, windows closed to %s)",
                    NAME,
                    tp.partition,
                    committed,
                    last.offset,
                    last.closed,
                )

    async def _read_progress(self, partitions: list[int]) -> dict[int, slices.PartitionProgress]:
        return await last_progress(self._probe, self.slices_topic, partitions)

    async def _restore_filters(self, partitions: list[int]) -> None:
        """New setpoints partitions: the filter state from the standby copy, read to the
        changelog's end."""
        for partition, entries in (await self.standby.take(partitions)).items():
            part = FilterPartition(partition, self.filter_config, self.filter_hold)
            sites = part.restore(entries)
            self.filters[partition] = OwnedFilter(part, self.wall(), part.clock)
            log.info(
                "%s: filter[%d] restored: %d site(s), clock %s", NAME, partition, sites, part.clock
            )

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        consumer = self._consumer
        session_s = self.settings.workers.session_timeout_s
        self._polled = time.monotonic()
        try:
            while not self._closing:
                batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
                polled = time.monotonic()
                away = polled - self._polled  # since a poll it was surely a member at
                async with self._lock:
                    if away > session_s and not await still_member(consumer, batches, away, NAME):
                        continue  # (asked again at the next poll, until the rebalance)
                    self._polled = polled
                    await self.cycle(batches)
        except asyncio.CancelledError:
            raise
        except InvalidSessionTimeoutError:
            error = session_timeout_refused(self.settings, group_id(self.settings))
            log.error("%s: %s", NAME, error)  # the message says it all
            await self.crash(error)
        except Exception as exc:
            log.exception("%s: failed", NAME)
            await self.crash(exc)

    async def cycle(self, batches: Mapping[Any, list[Any]]) -> None:
        """One ``getmany`` result (see the module doc)."""
        cpu = time.process_time()
        batch = CycleBatch()
        stamp = time.time_ns() // 1000  # processing time: dead letters only
        by_partition: dict[int, list[Any]] = {}
        setpoints: dict[int, list[Any]] = {}
        for tp, records in batches.items():
            if not records:
                continue
            if tp.topic == self.telemetry_topic and tp.partition in self.owned:
                by_partition[tp.partition] = records
            elif tp.topic == self.setpoints_topic and tp.partition in self.filters:
                setpoints[tp.partition] = records
        now = self.wall()
        for p, records in by_partition.items():
            self._fold(p, records, stamp, now, batch)
            self.records += len(records)
            batch.read[self.telemetry_topic] += len(records)
        for p, records in setpoints.items():
            owned = self.filters[p]
            tel = self.owned.get(p)
            limits = tel.telemetry.limits_at if tel is not None else no_limits
            batch.filtered.append((p, owned.partition.process(records, limits, stamp)))
            owned.input_at, owned.input_clock = now, owned.partition.clock
            batch.commits[TopicPartition(self.setpoints_topic, p)] = records[-1].offset + 1
            self.records += len(records)
            batch.read[self.setpoints_topic] += len(records)
            if len(records) >= YIELD_AFTER:  # a fan-out: heartbeats and the leader run
                self.cpu_s += time.process_time() - cpu
                await asyncio.sleep(0)
                cpu = time.process_time()
        self.cpu_s += time.process_time() - cpu
        await self._idle(batch, setpoints.keys(), now)
        await self._send(batch)

    def _fold(self, p: int, records: list[Any], stamp: int, now: int, batch: CycleBatch) -> None:
        owned = self.owned[p]
        part = owned.telemetry
        outcome = part.add(records, stamp)
        if part.data_clock != owned.record_clock:
            owned.record_clock, owned.moved_at = part.data_clock, now
        self._publish(p, owned, outcome.states, batch, now)
        batch.dead_letters += outcome.dead_letters
        batch.commits[TopicPartition(self.telemetry_topic, p)] = part.commit_offset()

    def _publish(
        self,
        p: int,
        owned: OwnedTelemetry,
        closed: list[slices.WindowSlice],
        batch: CycleBatch,
        now: int,
    ) -> None:
        """The cycle's closed windows of partition ``p`` (in close order), then its progress.
        A slice's record says the partition is at that slice's close, not at the cycle's
        clock: the leader may read the cycle's records over several fetches, and a bound
        beyond the slices still to come would let it close their windows without them."""
        part = owned.telemetry
        progress = part.progress(idle=False)
        grace = part.grace
        for s in closed:
            close = slices.close_time(s, grace)
            clock = progress.clock
            at = progress if clock is None or clock <= close else replace(progress, clock=close)
            batch.slices.append((p, slices.SliceRecord(at, s), close))
        key = (progress.clock, tuple(sorted(progress.closed.items())), progress.idle, progress.late)
        if closed or key != owned.published or now - owned.published_at >= PROGRESS_EVERY_S * 1e6:
            ts = progress.clock if progress.clock is not None else 0
            batch.slices.append((p, slices.SliceRecord(progress), ts))
            owned.published, owned.published_at = key, now

    async def _idle(self, batch: CycleBatch, fed: Iterable[int], now: int) -> None:
        """Silent caught-up partitions: a watermark each (``site_clock``); the filters' due
        writes up to their estimated clock."""
        consumer = self._consumer
        clocks = self.clocks
        estimate = await clocks.estimate(self.owned, now)
        for p, owned in self.owned.items():
            tp = TopicPartition(self.telemetry_topic, p)
            part = owned.telemetry
            position = await caught_up(consumer, tp)
            if position is None:
                continue
            if part.clock is None:
                # nothing to fold up to here (transaction markers, aborted records): the
                # leader trusts "idle" only once this offset reaches the partition's end
                part.next_offset = max(part.next_offset, position)
                progress = part.progress(idle=True)
                key = (None, (), True, progress.late, progress.offset)
                if key != owned.published or now - owned.published_at >= 1e6:
                    batch.slices.append((p, slices.SliceRecord(progress), 0))
                    owned.published, owned.published_at = key, now
            elif owned.record_clock is not None:
                clocks.watermark(p, owned, owned.record_clock + (now - owned.moved_at), batch, now)
                continue
            if estimate is not None:  # no record of its own yet: the worker's estimate
                clocks.watermark(p, owned, estimate, batch, now)
        fed_set = set(fed)
        for p, owned_filter in self.filters.items():
            tp = TopicPartition(self.setpoints_topic, p)
            if p in fed_set or await caught_up(consumer, tp) is None:
                continue
            clock = owned_filter.input_clock
            if clock is None:
                continue
            ticked = owned_filter.partition.tick(clock + (now - owned_filter.input_at))
            if ticked.commands or ticked.changes:
                batch.filtered.append((p, ticked))

    async def _send(self, batch: CycleBatch) -> None:
        """The cycle's slices, commands and dead letters, then the changed filter states,
        each group acknowledged record by record (``contract.kafka.delivery``) before the
        next; the offsets last. None of it from a worker expelled while frozen in the cycle."""
        assert self._sender is not None  # noqa: S101  # set by on_start
        away = time.monotonic() - self._polled
        if away > self.settings.workers.session_timeout_s and await expelled(
            self._consumer, away, NAME
        ):
            return
        app_id = self.settings.app_id
        out = [
            Outgoing(
                self.telemetry_topic,
                encode(WATERMARK_EVENT, watermark_record(app_id, p, at)),
                None,
                p,
                timestamp_ms=at // 1000,
            )
            for p, at in batch.watermarks
        ]
        out += [
            Outgoing(
                self.slices_topic,
                slices.encode(record),
                None,
                p,
                timestamp_ms=max(ts, 0) // 1000,
            )
            for p, record, ts in batch.slices
        ]
        filtered = FilterOutcome()
        for _, outcome in batch.filtered:
            filtered.extend(outcome)
        commands = self.commands_topic
        to_bytes = self.encode_command
        out += [Outgoing(commands, to_bytes(c), c["site_id"].encode()) for c in filtered.commands]
        for letter in [*batch.dead_letters, *filtered.dead_letters]:
            out.append(Outgoing(self.deadletter_topic, encode("DeadLetter", letter), letter["key"]))
            log.warning(
                "%s: %s[%d]@%d -> deadletter: %s: %s",
                NAME,
                letter["source_topic"],
                letter["partition"],
                letter["offset"],
                letter["error_type"],
                letter["reason"],
            )
        for site_id, setpoint_id, reason, event_time, now in filtered.dropped:
            log.warning(
                "%s: setpoint %s dropped: %s (event time %d, filter clock %d)",
                site_id,
                setpoint_id,
                reason,
                event_time,
                now,
            )
        await self._sender.deliver(out)
        self.commands_sent += len(filtered.commands)
        self.reasons.update(filtered.reasons)
        for letter in [*batch.dead_letters, *filtered.dead_letters]:
            self.dead_letters[(str(letter["consumer"]), str(letter["error_type"]))] += 1
        await self._save(batch.filtered)
        await self._commit(batch.commits)
        self.records_done.update(batch.read)
        self.cycles += 1
        self._log_late()

    async def _save(self, filtered: list[tuple[int, FilterOutcome]]) -> None:
        """The changed filter states to the changelog, on their partition (after the
        commands: a crash repeats a command, never loses one)."""
        assert self._sender is not None  # noqa: S101
        topic = self.standby.topic
        rows = [
            Outgoing(topic, value, key, p)
            for p, outcome in filtered
            for key, value in (
                changelog_entry(site, data) for site, data in outcome.changes.items()
            )
        ]
        await self._sender.deliver(rows)

    async def _commit(self, offsets: Mapping[Any, int]) -> None:
        if not offsets:
            return
        try:
            await self._consumer.commit(dict(offsets))
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError, KafkaError) as exc:
            log.warning("%s: offsets not committed (read again later): %r", NAME, exc)
            return
        self.committed.update(offsets)

    @property
    def consumer(self) -> Any:
        """The group's ``AIOKafkaConsumer`` while the service runs, else None."""
        return self._consumer

    def _note_late(self) -> None:
        """Add each owned partition's new late drops to ``late_total``."""
        for p, owned in self.owned.items():
            now = owned.telemetry.late
            self.late_total += max(0, now - self._late_seen.get(p, 0))
            self._late_seen[p] = now

    def _log_late(self) -> None:
        self._note_late()
        late = sum(o.telemetry.late for o in self.owned.values())
        if late > self.late_logged:
            log.warning(
                "%s: %d late telemetry record(s) dropped so far (their window had closed in "
                "their partition's stream time)",
                NAME,
                late,
            )
            self.late_logged = late

    @property
    def late(self) -> int:
        """Telemetry records dropped as late in the partitions owned now."""
        return sum(o.telemetry.late for o in self.owned.values())
