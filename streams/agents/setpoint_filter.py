"""Setpoint filter agent: ``site.setpoints`` -> ``site.commands``.

State per site (``FilterState.to_dict()``) lives in the table ``filter-state`` (changelog
``<app_id>-filter-state-changelog``, partitioned like ``site.setpoints``), so a restarted
worker recovers it and a setpoint processed again after a crash is a DUPLICATE, not a second
command (command ids are ``uuid5(site, setpoint)`` besides). A timer writes the pending
(suppressed) setpoints whose gate has opened (``setpoint_filter.tick``): it cannot use the
current event's partition, so it computes the partition of the site key the way the Kafka
default partitioner does (murmur2), which is how every producer of ``site.setpoints`` keys.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.types import StreamT, TableT

from streams.agents.base import AgentContext, decode_raw_value, expect
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
        self.table: TableT[str, Any] = ctx.app.Table(
            TABLE,
            default=None,
            key_type=str,
            partitions=ctx.partitions_of("site.setpoints"),
            help="setpoint filter state per site (FilterState.to_dict())",
        )

    def state_of(self, site_id: str) -> FilterState:
        data = self.table.get(site_id)
        return FilterState() if data is None else FilterState.from_dict(data)

    async def process(self, stream: StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                name, record = decode_raw_value(event)
                expect(name, _ACCEPTS, event.message.topic)
                setpoint = setpoint_of_plain(record)
                state = self.state_of(setpoint.site_id)
                new_state, command, reason = filter_setpoint(
                    state,
                    setpoint,
                    self.ctx.clock(),
                    self.config,
                    self.book.limits(setpoint.site_id),
                )
                if new_state != state:
                    self.table[setpoint.site_id] = new_state.to_dict()
                if command is not None:
                    await self.emit(command)
                if reason in _LATE:
                    log.warning(
                        "%s: setpoint %s dropped: %s (event time %d, now %d)",
                        setpoint.site_id,
                        setpoint.setpoint_id,
                        reason,
                        setpoint.event_time,
                        self.ctx.clock(),
                    )
            except Exception as exc:  # bad input (EventError) or a step bug: never fatal
                await self.ctx.dead_letter(event, exc, NAME)

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
