"""Live compliance agent: ``fleet.state`` + activations/assignments -> ``compliance.verdicts``.

All three inputs are keyed by ``fleet_id`` (one partition each), so one stream over them
sees every event of a fleet in partition order. The obligations in force and the baseline
(``ComplianceState.to_dict()``) live in the table ``compliance-state`` keyed by fleet_id
(changelog ``<app_id>-compliance-state-changelog``): a restarted worker still judges the
activations it saw before. Stale sites come from the worker's site book (``sitebook``).
Verdict ids are deterministic (window, obligation, rule): a window judged again after a
restart gives the same verdict ids.
"""

from __future__ import annotations

from typing import Any

from faust.types import StreamT, TableT

from contract.records import ComplianceVerdict, FleetState, MarketActivation, ReserveAssignment
from streams.agents.base import AgentContext, check_fleet, decode_value, expect
from streams.agents.sitebook import SiteBook
from streams.steps.compliance import (
    ComplianceConfig,
    ComplianceState,
    add_activation,
    add_assignment,
    evaluate,
    stale_sites,
)

NAME = "compliance"
TABLE = "compliance-state"
INPUTS = ("fleet.state", "market.activations", "reserve.assignments")
_ACCEPTS = frozenset({"FleetState", "MarketActivation", "ReserveAssignment"})


class ComplianceAgent:
    def __init__(self, ctx: AgentContext, book: SiteBook) -> None:
        self.ctx = ctx
        self.book = book
        self.config: ComplianceConfig = ctx.settings.compliance.to_config()
        counts = {ctx.partitions_of(n) for n in INPUTS}
        self.table: TableT[str, Any] = ctx.app.Table(
            TABLE,
            default=None,
            key_type=str,
            partitions=max(counts),
            help="live compliance state per fleet (ComplianceState.to_dict())",
        )

    def step(
        self, state: ComplianceState, name: str, record: dict[str, Any]
    ) -> tuple[str, ComplianceState, list[ComplianceVerdict]]:
        """(fleet_id, new state, verdicts) for one decoded input (pure steps)."""
        if name == "MarketActivation":
            act = MarketActivation.from_record(record)
            check_fleet(act.fleet_id, self.ctx.settings)
            return act.fleet_id, add_activation(state, act), []
        if name == "ReserveAssignment":
            asg = ReserveAssignment.from_record(record)
            check_fleet(asg.fleet_id, self.ctx.settings)
            return asg.fleet_id, add_assignment(state, asg), []
        fleet = FleetState.from_record(record)
        check_fleet(fleet.fleet_id, self.ctx.settings)
        stale = stale_sites(self.book.last_seen, fleet.window_end, self.config)
        new_state, verdicts = evaluate(state, fleet, stale, self.config)
        return fleet.fleet_id, new_state, verdicts

    def state_of(self, fleet_id: str) -> ComplianceState:
        data = self.table.get(fleet_id)
        return ComplianceState() if data is None else ComplianceState.from_dict(data)

    async def process(self, stream: StreamT[Any]) -> None:
        fleet_id = self.ctx.settings.fleet_id
        async for event in stream.events():
            try:
                name, record = decode_value(event)
                expect(name, _ACCEPTS, event.message.topic)
                state = self.state_of(fleet_id)
                _, new_state, verdicts = self.step(state, name, record)
                if new_state != state:
                    self.table[fleet_id] = new_state.to_dict()
                for verdict in verdicts:
                    await self.ctx.send(
                        "compliance.verdicts", "ComplianceVerdict", verdict.to_record()
                    )
            except Exception as exc:  # bad input (EventError) or a step bug: never fatal
                await self.ctx.dead_letter(event, exc, NAME)


def register(ctx: AgentContext, book: SiteBook) -> ComplianceAgent:
    agent = ComplianceAgent(ctx, book)
    ctx.app.agent(ctx.topic(*INPUTS), name=NAME)(agent.process)
    return agent
