"""Setpoint filter agent: ``site.setpoints`` -> ``site.commands``.

State per site (``FilterState.to_dict()``) lives in the table ``filter-state`` (changelog
``<app_id>-filter-state-changelog``, partitioned like ``site.setpoints``), so a restarted
worker recovers it and a setpoint processed again after a crash is a DUPLICATE, not a second
command (command ids are ``uuid5(site, setpoint)`` besides). A timer writes the pending
(suppressed) setpoints whose gate has opened (``setpoint_filter.tick``): it cannot use the
current event's partition, so it computes the partition of the site key the way the Kafka
default partitioner does (murmur2), which is how every producer of ``site.setpoints`` keys.

Batches: Faust still delivers one event at a time (its consumer, conductor and stream), but
the agent takes them in ``Stream.take_events`` batches (at most ``BATCH_MAX``, or what came
within ``BATCH_WITHIN_S``) and pays the sending once per batch (:meth:`process_batch`): the
commands in per-partition batches, acknowledged, then each changed site's last state to the
changelog, acknowledged; Faust acks the batch's events (so commits their offsets) only
after that. Sent one by one through Faust (a send per command and a changelog send per
state, each woken into its own small produce request), one FleetSetpoint's 10,000 commands
took 8-12 s in the worker; batched, 2-2.5 s, of which the per-event delivery is most of the
rest (bench_streams ``fleet_setpoint_to_10k_commands_worker``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from faust.tables.table import Table
from faust.types import EventT, StreamT

from streams.agents.base import AgentContext, decode_raw_value, expect, started_kafka_producer
from streams.agents.batching import KeyedBatchSender
from streams.agents.sitebook import SiteBook
from streams.steps.records_site import SiteCommand, setpoint_of_plain
from streams.steps.setpoint_filter import (
    FilterConfig,
    FilterReason,
    FilterState,
    filter_setpoint,
    tick,
)

log = logging.getLogger(__name__)

NAME = "setpoint-filter"
#: events per batch (``Stream.take_events``); a batch also ends when no event came for
#: ``BATCH_WITHIN_S`` (the longest a lone setpoint waits before it is filtered)
BATCH_MAX = 2_000
BATCH_WITHIN_S = 0.01
TABLE = "filter-state"
TICK_EVERY_S = 1.0
_ACCEPTS = frozenset({"SiteSetpoint"})
#: drops that mean the pipeline lags or a producer misbehaves: logged as warnings
_LATE = frozenset({FilterReason.STALE, FilterReason.EXPIRED, FilterReason.OUT_OF_ORDER})


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (Java/aiokafka murmur2)."""
    # aiokafka ships no type information
    from aiokafka.partitioner import murmur2  # type: ignore[import-untyped, unused-ignore]

    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


class SetpointFilterAgent:
    """The agent body and its timer, bound to one app's table and settings."""

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

    def state_of(self, site_id: str) -> FilterState:
        data = self.table.get(site_id)
        return FilterState() if data is None else FilterState.from_dict(data)

    async def process(self, stream: StreamT[Any]) -> None:
        # StreamT in Faust 0.15.3 does not declare take_events (faust.Stream has it)
        batches = stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S)  # type: ignore[attr-defined]
        async for events in batches:
            await self.process_batch(events)

    async def process_batch(self, events: Sequence[EventT[Any]]) -> int:
        """Filter a batch of events in order; returns the commands sent.

        Per event: decode, the pure step on the site's state, the new state into the table's
        store. Then the batch's commands are sent in per-partition batches and acknowledged
        (``AgentContext.send_many``), and only then each changed site's last state goes to
        the changelog, to the partition of the event that changed it (the table is
        partitioned like ``site.setpoints``). A crash in between repeats a command (same
        ``command_id``) when the setpoint is read again; it never loses one.
        """
        table = self.table
        changes: dict[str, tuple[int, dict[str, Any]]] = {}
        commands: list[dict[str, Any]] = []
        for event in events:
            try:
                name, record = decode_raw_value(event)
                expect(name, _ACCEPTS, event.message.topic)
                setpoint = setpoint_of_plain(record)
                site_id = setpoint.site_id
                state = self.state_of(site_id)
                now = self.ctx.clock()
                new_state, command, reason = filter_setpoint(
                    state, setpoint, now, self.config, self.book.limits(site_id)
                )
                if new_state != state:
                    data = new_state.to_dict()
                    table.data[site_id] = data
                    changes[site_id] = (event.message.partition, data)
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
                await self.ctx.dead_letter(event, exc, NAME)
        sent = await self.ctx.send_many("site.commands", "SiteCommand", commands)
        await self.save(changes)
        return sent

    async def save(self, changes: Mapping[str, tuple[int, dict[str, Any]]]) -> None:
        """Write ``{site: (partition, state)}`` to the table's changelog and wait for the acks.

        On a running worker the records go in per-partition batches on the app's producer,
        key and value serialised by the changelog topic exactly as Faust's
        ``Table.send_changelog`` would, and each acknowledged batch's offset is recorded as
        the store's persisted offset (as Faust's ``_on_changelog_sent`` does; a batch's
        first offset: a recovery may re-read a few records, never skip one). Without a
        started producer (Faust's test context) or inside a transaction, through Faust's
        ``send_changelog`` one by one.
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
                kafka, topic.get_topic_name(), self.ctx.partitions_of("site.setpoints")
            )
        key_serializer, value_serializer = table.key_serializer, table.value_serializer
        records = [
            (
                partition,
                topic.prepare_key(site_id, key_serializer)[0],
                topic.prepare_value(data, value_serializer)[0],
            )
            for site_id, (partition, data) in changes.items()
        ]
        for metadata in await asyncio.gather(*await self._changelog.send_partitioned(records)):
            table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)

    async def emit(self, command: SiteCommand) -> None:
        await self.ctx.send("site.commands", "SiteCommand", command.to_record())

    async def flush_pending(self) -> int:
        """Write every pending setpoint whose gate opened; returns the commands sent."""
        now = self.ctx.clock()
        partitions = self.ctx.partitions_of("site.setpoints")
        sent = 0
        for site_id, data in list(self.table.items()):
            if data is None or data.get("pending") is None:
                continue
            state = FilterState.from_dict(data)
            new_state, command, _ = tick(state, now, self.config)
            if new_state == state:
                continue
            # no current event in a timer: set the store and the changelog directly
            self.table.data[site_id] = new_state.to_dict()
            partition = murmur2_partition(site_id.encode(), partitions)
            self.table.send_changelog(partition, site_id, new_state.to_dict())
            if command is not None:
                await self.emit(command)
                sent += 1
        return sent


def register(ctx: AgentContext, book: SiteBook) -> SetpointFilterAgent:
    agent = SetpointFilterAgent(ctx, book)
    ctx.app.agent(ctx.topic("site.setpoints"), name=NAME)(agent.process)

    async def tick_pending() -> None:
        await agent.flush_pending()

    ctx.app.timer(TICK_EVERY_S, name=f"{NAME}-tick")(tick_pending)
    return agent
