"""Setpoint filter: ``site.setpoints`` -> ``site.commands``, state in a Faust table.

State per site (``FilterState.to_dict()``) lives in the Faust table ``filter-state``
(changelog ``<app_id>-filter-state-changelog``, partitioned like ``site.setpoints``), so a
restarted worker recovers it (Faust restores the table before the filter takes its first
batch) and a setpoint processed again after a crash is a DUPLICATE, not a second command
(command ids are ``uuid5(site, setpoint)`` besides). A timer writes the pending
(suppressed) setpoints whose gate has opened (``setpoint_filter.tick``).

Input: not a Faust agent. One fleet setpoint fans out to thousands of site setpoints at
once, and Faust's per-message delivery (13-14k events/s to an agent doing nothing on the
bench machine) alone took longer than the 1 s the issue allows for 10,000 commands; so
``site.setpoints`` is read in ``getmany`` batches by a
:class:`~streams.agents.batch_consumer.BatchConsumer` (consumer group
``<app_id>-setpoints``), started by Faust after table recovery. Each batch
(:meth:`SetpointFilter.process_records`): per record decode, the pure step on the site's
state, the new state into the table's store; then the commands in per-partition batches,
acknowledged; then each changed site's last state to the changelog, on the site's
partition (the murmur2 partition every producer of ``site.setpoints`` keys by),
acknowledged; only then are the batch's offsets committed. A crash in between repeats a
command (same ``command_id``) when the setpoint is read again; it never loses one. Measured
(bench_streams ``fleet_setpoint_to_10k_commands_worker``): through the Faust agent, one
FleetSetpoint's 10,000 commands took 2-3 s in the worker; batched, see the bench.

The table and the batch consumer's partitions are not co-assigned: like the site book,
this assumes the fleet app runs as one worker (see ``sitebook``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

from faust.tables.table import Table

from contract.codec import decode_raw
from contract.errors import InvalidEventError
from contract.records import SiteCommand
from streams.agents.base import AgentContext, expect, started_kafka_producer
from streams.agents.batch_consumer import BatchConsumer, Batches
from streams.agents.batching import KeyedBatchSender
from streams.agents.sitebook import SiteBook
from streams.steps.deadletter import ConsumedRecord
from streams.steps.plain import setpoint_of_plain
from streams.steps.setpoint_filter import (
    FilterConfig,
    FilterReason,
    FilterState,
    filter_setpoint,
    tick_with_reasons,
)

log = logging.getLogger(__name__)

NAME = "setpoint-filter"
#: the batch consumer's name (its group: ``<app_id>-setpoints``)
CONSUMER = "setpoints"
#: records per ``getmany``
BATCH_MAX = 10_000
TABLE = "filter-state"
TICK_EVERY_S = 1.0
#: ticks between two full looks at the table for pending setpoints (restored entries)
FULL_SCAN_EVERY = 30
_COMPACT = (",", ":")
_ACCEPTS = frozenset({"SiteSetpoint"})
#: drops that mean the pipeline lags or a producer misbehaves: logged as warnings
_LATE = frozenset({FilterReason.STALE, FilterReason.EXPIRED, FilterReason.OUT_OF_ORDER})


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (Java/aiokafka murmur2)."""
    # aiokafka ships no type information
    from aiokafka.partitioner import murmur2  # type: ignore[import-untyped, unused-ignore]

    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def changelog_entry(site_id: str, data: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The filter table's changelog key and value for ``site_id``'s state dict: the bytes
    Faust's json serializer writes for the table's ``str`` keys and plain JSON values
    (compact separators; checked against the table's own ``prepare_key``/``prepare_value``
    by the tests), at a third of the cost of going through Faust's codec registry."""
    return (
        json.dumps(site_id, separators=_COMPACT).encode(),
        json.dumps(data, separators=_COMPACT).encode(),
    )


class SetpointFilter:
    """The filter's batch step and its timer, bound to one app's table and settings."""

    def __init__(self, ctx: AgentContext, book: SiteBook) -> None:
        self.ctx = ctx
        self.book = book
        self.config: FilterConfig = ctx.settings.filter.to_config()
        # Faust's Table: the changelog writes need its serializers and store (not on TableT)
        self.table = cast(
            Table[str, Any],
            ctx.app.Table(
                TABLE,
                default=None,
                key_type=str,
                partitions=ctx.partitions_of("site.setpoints"),
                help="setpoint filter state per site (FilterState.to_dict())",
            ),
        )
        self._changelog: KeyedBatchSender | None = None
        # the FilterState of each stored dict this worker wrote or parsed: a store entry is
        # replaced (never changed in place) on every change, so an entry that is still the
        # same object needs no second parse (one per site and product lane, 30,000 at once
        # for three products over 10,000 homes)
        self._parsed: dict[str, tuple[Mapping[str, Any], FilterState]] = {}
        # sites whose stored state holds a pending setpoint (the timer visits only these);
        # None: not known yet, or due for a full look at the table (entries restored from
        # the changelog), which the timer takes every FULL_SCAN_EVERY ticks
        self._pending: set[str] | None = None
        self._ticks = 0
        self.consumer: BatchConsumer | None = None  #: set by ``register``
        #: what became of each setpoint, by reason (``streams.metrics`` exposes them)
        self.reasons: Counter[FilterReason] = Counter()

    def state_of(self, site_id: str) -> FilterState:
        return self._state(site_id, self.table.get(site_id))

    def _state(self, site_id: str, data: Mapping[str, Any] | None) -> FilterState:
        """The FilterState of a site's stored dict (parsed once per stored object)."""
        if data is None:
            return FilterState()
        cached = self._parsed.get(site_id)
        if cached is not None and cached[0] is data:
            return cached[1]
        state = FilterState.from_dict(data)
        self._parsed[site_id] = (data, state)
        return state

    async def process_batches(self, batches: Batches) -> int:
        """One ``getmany`` result (``{TopicPartition: records}``); returns the commands sent.
        A site's setpoints are all on one partition, so the partitions' order among
        themselves does not matter."""
        records = [record for part in batches.values() for record in part]
        return await self.process_records(records)

    async def process_records(self, records: Sequence[ConsumedRecord]) -> int:
        """Filter consumed ``site.setpoints`` records in order; returns the commands sent.

        Per record: decode, the pure step on the site's state, the new state into the table's
        store. Then the commands are sent in per-partition batches and acknowledged
        (``AgentContext.send_many``), and only then each changed site's last state goes to
        the changelog, to the partition of the record that changed it (the table is
        partitioned like ``site.setpoints``). A crash in between repeats a command (same
        ``command_id``) when the setpoint is read again; it never loses one. A record that
        does not decode or is not a valid SiteSetpoint is dead-lettered; the rest go on.
        """
        table = self.table
        store = table.data
        changes: dict[str, tuple[int, dict[str, Any]]] = {}
        states: dict[str, FilterState] = {}  # this batch's states (one parse per site)
        commands: list[dict[str, Any]] = []
        config, limits, clock = self.config, self.book.limits, self.ctx.clock
        reasons = self.reasons
        for record in records:
            try:
                value = record.value
                if not isinstance(value, bytes | bytearray | memoryview):
                    raise InvalidEventError(f"expected bytes, got {type(value).__name__}")
                decoded = decode_raw(value)
                expect(decoded.name, _ACCEPTS, record.topic)
                setpoint = setpoint_of_plain(decoded.record)
                site_id = setpoint.site_id
                state = states.get(site_id)
                if state is None:
                    state = self._state(site_id, store.get(site_id))
                now = clock()
                new_state, command, reason = filter_setpoint(
                    state, setpoint, now, config, limits(site_id)
                )
                if new_state != state:
                    data = new_state.to_dict()
                    store[site_id] = data
                    self._parsed[site_id] = (data, new_state)
                    self._note_pending(site_id, new_state)
                    changes[site_id] = (record.partition, data)
                states[site_id] = new_state
                reasons[reason] += 1
                if command is not None:
                    commands.append(command.to_record())
                if reason in _LATE:
                    log.warning(
                        "%s: setpoint %s dropped: %s (event time %d, now %d)",
                        site_id,
                        setpoint.setpoint_id,
                        reason,
                        setpoint.event_time,
                        now,
                    )
            except Exception as exc:  # bad input (EventError) or a step bug: never fatal
                await self.ctx.dead_letter_record(record, exc, NAME)
        sent = await self.ctx.send_many("site.commands", "SiteCommand", commands)
        await self.save(changes)
        return sent

    async def save(self, changes: Mapping[str, tuple[int, dict[str, Any]]]) -> None:
        """Write ``{site: (partition, state)}`` to the table's changelog and wait for the acks.

        On a running worker the records go in per-partition batches on the app's producer,
        key and value the bytes Faust's ``Table.send_changelog`` would write
        (:func:`changelog_entry`), and each acknowledged batch's offset is recorded as
        the store's persisted offset (as Faust's ``_on_changelog_sent`` does; a batch's
        first offset: a recovery may re-read a few records, never skip one). Without a
        started producer (Faust's test context) or inside a transaction, through Faust's
        ``send_changelog`` one by one (queued on Faust's producer buffer).
        """
        if not changes:
            return
        table = self.table
        kafka = started_kafka_producer(self.ctx.app)
        if kafka is None or self.ctx.app.in_transaction:
            for site_id, (partition, data) in changes.items():
                table.send_changelog(partition, site_id, data)
            return
        topic = table.changelog_topic
        if self._changelog is None:
            self._changelog = KeyedBatchSender(
                kafka,
                topic.get_topic_name(),
                self.ctx.partitions_of("site.setpoints"),
                await self.ctx.sender(),
            )
        records = [
            (partition, *changelog_entry(site_id, data))
            for site_id, (partition, data) in changes.items()
        ]
        for metadata in await (await self._changelog.send_partitioned(records)):
            table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)

    async def emit(self, command: SiteCommand) -> None:
        await self.ctx.send("site.commands", "SiteCommand", command.to_record())

    def _note_pending(self, site_id: str, state: FilterState) -> None:
        if self._pending is None:
            return
        if state.has_pending:
            self._pending.add(site_id)
        else:
            self._pending.discard(site_id)

    def _pending_sites(self) -> list[str]:
        """The sites to visit: those noted since the last full look at the table, or every
        site whose stored state holds a pending setpoint (on the first tick and every
        ``FULL_SCAN_EVERY`` ticks: entries may have been restored from the changelog)."""
        self._ticks += 1
        if self._pending is None or self._ticks % FULL_SCAN_EVERY == 0:
            self._pending = {
                site_id
                for site_id, data in self.table.data.items()
                if isinstance(data, Mapping) and _has_pending(data)
            }
        return sorted(self._pending)

    async def flush_pending(self) -> int:
        """Write every pending setpoint whose gate opened; returns the commands sent."""
        now = self.ctx.clock()
        partitions = self.ctx.partitions_of("site.setpoints")
        sent = 0
        for site_id in self._pending_sites():
            data = self.table.get(site_id)
            if data is None or not _has_pending(data):
                self._note_pending(site_id, FilterState())
                continue
            state = self._state(site_id, data)
            new_state, commands, settled = tick_with_reasons(state, now, self.config)
            if new_state == state:
                continue
            self.reasons.update(settled)
            # no current event in a timer: set the store and the changelog directly
            stored = new_state.to_dict()
            self.table.data[site_id] = stored
            self._parsed[site_id] = (stored, new_state)
            self._note_pending(site_id, new_state)
            partition = murmur2_partition(site_id.encode(), partitions)
            self.table.send_changelog(partition, site_id, stored)
            for command in commands:
                await self.emit(command)
                sent += 1
        return sent


def _has_pending(data: Mapping[str, Any]) -> bool:
    """Whether a stored state holds a pending setpoint in any lane (without parsing it)."""
    if data.get("pending") is not None:
        return True
    lanes = data.get("lanes")
    return isinstance(lanes, list) and any(
        isinstance(lane, Mapping) and lane.get("pending") is not None for lane in lanes
    )


def register(ctx: AgentContext, book: SiteBook) -> SetpointFilter:
    """The filter, its batch consumer (an app service) and its pending-write timer."""
    step = SetpointFilter(ctx, book)
    step.consumer = BatchConsumer(
        ctx.app,
        ctx.settings,
        name=CONSUMER,
        topic=ctx.settings.topic("site.setpoints"),
        handler=step.process_batches,
        max_records=BATCH_MAX,
        beacon=ctx.app.beacon,
    )
    ctx.app.service(step.consumer)  # type: ignore[arg-type]  # an instance: Faust starts it

    async def tick_pending() -> None:
        await step.flush_pending()

    ctx.app.timer(TICK_EVERY_S, name=f"{NAME}-tick")(tick_pending)
    return step
