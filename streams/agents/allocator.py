"""Allocator agent: fleet targets -> ``site.setpoints``; command results -> the site book.

Inputs ``market.fleet-setpoints``, ``market.activations`` and ``reserve.assignments`` are
keyed by ``fleet_id`` (one partition: one worker allocates, in order). The site status the
split needs (room from telemetry, derating from command results) comes from the worker's
:class:`~streams.agents.sitebook.SiteBook`; see that module for why the fleet app runs as
one worker and what scaling further would take.

Several products are in force at once (``fleet_allocations.FleetAllocations``: one allocation per
slot: energy dispatch, and each reserve or order product). Each request allocates at once
in its slot, replacing the slot's earlier allocation, with the other slots' shares in force
(``fleet_allocations.apply_request``). A timer drops expired allocations and re-splits, slot by
slot, those the book no longer lets stand (a site holding a share dropped, faulted, lost
headroom or got clamped below it, or a shortfall can now be served:
``fleet_allocations.refresh``), sending setpoints only to sites whose share changed and 0 to sites
that left the split. The state is memory only: after a restart the next request of each
product re-establishes its slot, the setpoints already sent stay valid at the sites until
their ``valid_until``, and what the sites report holding (``armed_*_kw``, ``order_*_kw``)
keeps counting against the room of every product allocated meanwhile. Every allocation's
report (target, allocated, shortfall, excluded sites) is logged; a shortfall at WARNING.
ReserveAssignments of aFRR/mFRR capacity are activation-driven: logged, nothing to split.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.types import StreamT

from contract.records import FleetSetpoint, MarketActivation, ReserveAssignment
from streams.agents.base import AgentContext, check_fleet, decode_value, expect
from streams.agents.sitebook import SiteBook
from streams.steps.allocation import (
    Allocation,
    AllocationRequest,
    activation_request,
    fleet_setpoint_request,
    reserve_request,
)
from streams.steps.availability import AllocatorConfig
from streams.steps.fleet_allocations import FleetAllocations, apply_request, refresh

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
        self.allocations = FleetAllocations()
        self.last: Allocation | None = None  #: the last allocation sent (logs, tests)
        self.setpoints_sent = 0  #: site setpoints Kafka acknowledged since the start
        self.book_version = -1

    def request(self, name: str, record: dict[str, Any]) -> AllocationRequest | None:
        """The allocation request of one decoded fleet-level event (None: nothing to split,
        aFRR/mFRR/NONE capacity). ``EventError`` for a bad or foreign one."""
        if name == "FleetSetpoint":
            sp = FleetSetpoint.from_record(record)
            check_fleet(sp.fleet_id, self.ctx.settings)
            return fleet_setpoint_request(sp)
        if name == "MarketActivation":
            act = MarketActivation.from_record(record)
            check_fleet(act.fleet_id, self.ctx.settings)
            return activation_request(act, self.config.order_margin)
        asg = ReserveAssignment.from_record(record)
        check_fleet(asg.fleet_id, self.ctx.settings)
        request = reserve_request(asg)
        if request is None:
            log.info(
                "reserve assignment %s: %s capacity %.3f MW is activation-driven, nothing to arm",
                asg.assignment_id,
                asg.product.value,
                asg.capacity_mw,
            )
        return request

    def allocate(self, name: str, record: dict[str, Any]) -> Allocation | None:
        """Allocate one decoded fleet-level event in its slot (the state is updated; the
        setpoints are not sent: see ``apply``)."""
        request = self.request(name, record)
        if request is None:
            return None
        self.allocations, allocation = apply_request(
            self.allocations, request, self.book.statuses(), self.ctx.clock(), self.config
        )
        return allocation

    async def apply(self, allocation: Allocation) -> None:
        self.last = allocation
        self.book_version = self.book.version
        report = allocation.report()
        if abs(allocation.shortfall_kw) > 0:
            log.warning("allocation short of target: %s", report)
        else:
            log.info("allocation: %s", report)
        self.setpoints_sent += await self.ctx.send_many(
            "site.setpoints", "SiteSetpoint", (sp.to_record() for sp in allocation.setpoints)
        )

    async def process(self, stream: StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                name, record = decode_value(event)
                expect(name, _ACCEPTS, event.message.topic)
                allocation = self.allocate(name, record)
                if allocation is not None:
                    await self.apply(allocation)
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

    async def maybe_reallocate(self) -> list[Allocation]:
        """Drop expired allocations; re-split those the book changed too much for (sticky:
        headroom drifts do not re-split, see ``allocator.reallocation_needed``)."""
        now = self.ctx.clock()
        by_slot = self.allocations.by_slot
        expired = any(a.request.valid_until <= now for a in by_slot.values())
        if not by_slot or (self.book.version == self.book_version and not expired):
            return []
        self.book_version = self.book.version
        self.allocations, done = refresh(self.allocations, self.book.statuses(), now, self.config)
        for allocation in done:
            await self.apply(allocation)
        return done


def register(ctx: AgentContext, book: SiteBook) -> AllocatorAgent:
    agent = AllocatorAgent(ctx, book)
    ctx.app.agent(ctx.topic(*INPUTS), name=NAME)(agent.process)
    ctx.app.agent(ctx.topic("site.command-results"), name=RESULTS_NAME)(agent.process_results)

    async def reallocate_timer() -> None:
        await agent.maybe_reallocate()

    ctx.app.timer(REALLOCATE_EVERY_S, name=f"{NAME}-reallocate")(reallocate_timer)
    return agent
