"""Allocator agent: fleet targets -> ``site.setpoints``; command results -> the site book.

Inputs ``market.fleet-setpoints``, ``market.activations`` and ``reserve.assignments`` are
keyed by ``fleet_id`` (one partition: one worker allocates, in order). The site status the
split needs (availability from telemetry, derating from command results) comes from the
worker's :class:`~streams.agents.sitebook.SiteBook`; see that module for why the fleet app
runs as one worker and what scaling further would take.

Each request allocates at once; a timer re-allocates the latest still-valid request when
the book changed in a way the split cannot absorb (a site holding a share dropped, faulted or
got clamped below it, or a shortfall can now be served: ``allocator.reallocation_needed``),
sending setpoints only to sites whose share changed and 0 to sites that left the split
(``allocator.reallocate``). The latest allocation is memory only: after
a restart the next fleet setpoint or activation re-establishes it, and the setpoints
already sent stay valid at the sites until their ``valid_until``. Every allocation's
report (target, allocated, shortfall, excluded sites) is logged; a shortfall at WARNING.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.types import StreamT

from contract.records import FleetSetpoint, MarketActivation, ReserveAssignment
from streams.agents.base import AgentContext, check_fleet, decode_value, expect
from streams.agents.sitebook import SiteBook
from streams.steps.allocator import (
    Allocation,
    allocate_activation,
    allocate_fleet_setpoint,
    allocate_reserve,
    reallocate,
    reallocation_needed,
)
from streams.steps.availability import AllocatorConfig

log = logging.getLogger(__name__)

NAME = "allocator"
RESULTS_NAME = "command-results"
REALLOCATE_EVERY_S = 1.0
INPUTS = ("market.fleet-setpoints", "market.activations", "reserve.assignments")
_ACCEPTS = frozenset({"FleetSetpoint", "MarketActivation", "ReserveAssignment"})


class AllocatorAgent:
    def __init__(self, ctx: AgentContext, book: SiteBook) -> None:
        self.ctx = ctx
        self.book = book
        self.config: AllocatorConfig = ctx.settings.allocator.to_config()
        self.current: Allocation | None = None
        self.book_version = -1

    def allocate(self, name: str, record: dict[str, Any]) -> Allocation:
        """The allocation of one decoded fleet-level request (pure steps)."""
        now = self.ctx.clock()
        statuses = self.book.statuses()
        if name == "FleetSetpoint":
            sp = FleetSetpoint.from_record(record)
            check_fleet(sp.fleet_id, self.ctx.settings)
            return allocate_fleet_setpoint(sp, statuses, now, self.config)
        if name == "MarketActivation":
            act = MarketActivation.from_record(record)
            check_fleet(act.fleet_id, self.ctx.settings)
            return allocate_activation(act, statuses, now, self.config)
        asg = ReserveAssignment.from_record(record)
        check_fleet(asg.fleet_id, self.ctx.settings)
        return allocate_reserve(asg, statuses, now, self.config)

    async def apply(self, allocation: Allocation) -> None:
        self.current = allocation
        self.book_version = self.book.version
        report = allocation.report()
        if abs(allocation.shortfall_kw) > 0:
            log.warning("allocation short of target: %s", report)
        else:
            log.info("allocation: %s", report)
        await self.ctx.send_many(
            "site.setpoints", "SiteSetpoint", (sp.to_record() for sp in allocation.setpoints)
        )

    async def process(self, stream: StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                name, record = decode_value(event)
                expect(name, _ACCEPTS, event.message.topic)
                await self.apply(self.allocate(name, record))
            except Exception as exc:  # bad input (EventError) or a step bug: never fatal
                await self.ctx.dead_letter(event, exc, NAME)

    async def process_results(self, stream: StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                name, record = decode_value(event)
                expect(name, frozenset({"CommandResult"}), event.message.topic)
                self.book.update_result(record)
            except Exception as exc:  # bad input (EventError) or a step bug: never fatal
                await self.ctx.dead_letter(event, exc, RESULTS_NAME)

    async def maybe_reallocate(self) -> Allocation | None:
        """Re-split the current request if the book changed and it is still valid."""
        current = self.current
        now = self.ctx.clock()
        if current is None or current.request.valid_until <= now:
            return None
        if self.book.version == self.book_version:
            return None
        statuses = self.book.statuses()
        self.book_version = self.book.version
        if not reallocation_needed(current, statuses, now, self.config):
            return None  # sticky: headroom drifts do not re-split (see reallocation_needed)
        allocation = reallocate(current, statuses, now, self.config)
        await self.apply(allocation)
        return allocation


def register(ctx: AgentContext, book: SiteBook) -> AllocatorAgent:
    agent = AllocatorAgent(ctx, book)
    ctx.app.agent(ctx.topic(*INPUTS), name=NAME)(agent.process)
    ctx.app.agent(ctx.topic("site.command-results"), name=RESULTS_NAME)(agent.process_results)

    async def reallocate_timer() -> None:
        await agent.maybe_reallocate()

    ctx.app.timer(REALLOCATE_EVERY_S, name=f"{NAME}-reallocate")(reallocate_timer)
    return agent
